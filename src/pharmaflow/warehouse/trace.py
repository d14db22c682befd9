"""Recall trace: everything a lot (or a batch) reached, from the warehouse's lot genealogy.

A recall coordinator has a lot number (or the batch QA just rejected) and needs, in seconds,
the batch and its QA outcome, every shipment that carried the lot (plant -> DC -> pharmacy ->
patient), every order dispensed from it and the distinct pseudonymous patients to contact
(through the vault's logged re-identification path, never here).

The graph is built by dbt (gold.lot_genealogy, one row per link; gold.dim_lot, one row per
lot), so a trace is four small filtered reads of pre-joined tables, no joins at query time:
on the demo warehouse the reads take a few ms and opening DuckDB dominates (~20 ms of CPU),
well under the 100 ms budget. The connection is read-only and without external access, like
`pharmaflow sql`, so a trace can run while others read the warehouse and can never change it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse.query import describe_duckdb_error, reader_config

# Each select lists its dataclass's fields in order, so rows become objects positionally
# (building ~1,000 link objects from dicts cost more than the queries on the busiest demo lot).
_BATCH_SQL = (
    "select batch_id, lot_number, ndc, site_id, final_status, quality_flag, "
    "cast(lab_pass_rate as double), lab_tests, lab_tests_failed, open_deviations, completed_at "
    "from gold.fact_batch_production where {where} order by batch_id"
)
_SHIPMENT_SQL = (
    "select lot_number, shipment_id, leg, origin_facility_id, origin_facility_type, "
    "destination_facility_id, destination_facility_type, carrier_id, cold_chain, order_id, "
    "patient_key, linked_at, delivered_at "
    "from gold.lot_genealogy where link_type = 'SHIPMENT' and lot_number in ({lots}) "
    "order by linked_at, lot_number, shipment_id"
)
_ORDER_SQL = (
    "select lot_number, order_id, patient_key, origin_facility_id, quantity, linked_at, "
    "shipment_id, delivered_at, cancelled_at, coalesce(is_current_fill, false) "
    "from gold.lot_genealogy where link_type = 'ORDER' and lot_number in ({lots}) "
    "order by linked_at, lot_number, order_id"
)

_LEG_FLOW = {"PLANT_TO_DC": 0, "DC_TO_PHARMACY": 1, "PHARMACY_TO_PATIENT": 2}


@dataclass(frozen=True)
class BatchOutcome:
    """The batch that made a lot and its QA verdict (gold.fact_batch_production)."""

    batch_id: str
    lot_number: str | None
    ndc: str | None
    site_id: str | None
    final_status: str | None
    quality_flag: str
    lab_pass_rate: float | None
    lab_tests: int
    lab_tests_failed: int
    open_deviations: int
    completed_at: dt.datetime | None


@dataclass(frozen=True)
class ShipmentLink:
    """One shipment that carried the lot, with its leg (PLANT_TO_DC, DC_TO_PHARMACY, ...)."""

    lot_number: str
    shipment_id: str
    leg: str
    origin_facility_id: str | None
    origin_facility_type: str | None
    destination_facility_id: str | None
    destination_facility_type: str | None
    carrier_id: str | None
    cold_chain: bool | None
    order_id: str | None
    patient_key: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class OrderLink:
    """One order the lot was dispensed to; patient_key is the pseudonymous token only."""

    lot_number: str
    order_id: str
    patient_key: str | None
    pharmacy_id: str | None
    quantity: int | None
    filled_at: dt.datetime
    shipment_id: str | None
    delivered_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    is_current_fill: bool


@dataclass(frozen=True)
class RecallTrace:
    """The answer to `trace lot` / `trace batch`: what was asked, and everything it reached."""

    query: str  # "lot" or "batch"
    key: str
    lots: tuple[str, ...]
    batches: tuple[BatchOutcome, ...]
    shipments: tuple[ShipmentLink, ...]
    orders: tuple[OrderLink, ...]
    patient_keys: tuple[str, ...]

    @property
    def counts(self) -> dict[str, Any]:
        """Distinct counts (a shipment carrying two traced lots counts once)."""
        legs = Counter(leg for leg, _ in {(s.leg, s.shipment_id) for s in self.shipments})
        return {
            "lots": len(self.lots),
            "batches": len(self.batches),
            "shipments": len({s.shipment_id for s in self.shipments}),
            "shipments_by_leg": dict(sorted(legs.items(), key=_leg_order)),
            "orders": len({o.order_id for o in self.orders}),
            "orders_without_patient": len(
                {o.order_id for o in self.orders if o.patient_key is None}
            ),
            "units_dispensed": sum(o.quantity or 0 for o in self.orders),
            "patients": len(self.patient_keys),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC strings, counts included."""
        out = asdict(self)
        out["counts"] = self.counts
        return _jsonable(out)


def _leg_order(item: tuple[str, int]) -> tuple[int, str]:
    """Legs in the order the goods flow, unusual legs (e.g. DC_TO_DC) after them."""
    return (_LEG_FLOW.get(item[0], len(_LEG_FLOW)), item[0])


def trace_lot(path: Path, lot: str) -> RecallTrace:
    """Everything lot `lot` reached. Unknown lot: PharmaflowError."""
    with _connect(path) as con:
        return trace_lot_on(con, lot)


def trace_batch(path: Path, batch_id: str) -> RecallTrace:
    """Everything the lot made by batch `batch_id` reached. Unknown batch: PharmaflowError."""
    with _connect(path) as con:
        return trace_batch_on(con, batch_id)


def trace_lot_on(con: duckdb.DuckDBPyConnection, lot: str) -> RecallTrace:
    """`trace_lot` on an open connection (or cursor): serving's snapshot cursor."""
    if not _rows(con, "select 1 from gold.dim_lot where lot_number = ?", [lot]):
        raise PharmaflowError(f"unknown lot {lot!r}: no batch, shipment or order names it")
    batches = [
        BatchOutcome(*row) for row in _rows(con, _BATCH_SQL.format(where="lot_number = ?"), [lot])
    ]
    return _assemble(con, "lot", lot, [lot], batches)


def trace_batch_on(con: duckdb.DuckDBPyConnection, batch_id: str) -> RecallTrace:
    """`trace_batch` on an open connection (or cursor)."""
    batches = [
        BatchOutcome(*row)
        for row in _rows(con, _BATCH_SQL.format(where="batch_id = ?"), [batch_id])
    ]
    if not batches:
        raise PharmaflowError(f"unknown batch {batch_id!r}: no manufacturing event names it")
    lots = sorted({b.lot_number for b in batches if b.lot_number is not None})
    return _assemble(con, "batch", batch_id, lots, batches)


def _assemble(
    con: duckdb.DuckDBPyConnection,
    query: str,
    key: str,
    lots: list[str],
    batches: list[BatchOutcome],
) -> RecallTrace:
    placeholders = ", ".join("?" for _ in lots) or "null"
    shipments = tuple(
        ShipmentLink(*row) for row in _rows(con, _SHIPMENT_SQL.format(lots=placeholders), lots)
    )
    orders = tuple(
        OrderLink(*row) for row in _rows(con, _ORDER_SQL.format(lots=placeholders), lots)
    )
    patients = {link.patient_key for link in (*shipments, *orders) if link.patient_key is not None}
    return RecallTrace(
        query=query,
        key=key,
        lots=tuple(lots),
        batches=tuple(batches),
        shipments=shipments,
        orders=orders,
        patient_keys=tuple(sorted(patients)),
    )


@contextmanager
def _connect(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A reader's connection (read-only, no external access, spill outside a read-only data
    dir): a trace works on a read-only copy of the warehouse and beside other readers."""
    if not path.exists():
        raise PharmaflowError(f"no warehouse at {path}: run `pharmaflow build` (or demo) first")
    with reader_config(path) as config:
        try:
            con = duckdb.connect(str(path), read_only=True, config=config)
        except duckdb.Error as exc:
            raise PharmaflowError(
                f"cannot open the warehouse: {describe_duckdb_error(exc, path)}"
            ) from None
        with con:
            yield con


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows as tuples; timestamps become aware UTC datetimes (the warehouse stores naive UTC)."""
    try:
        cursor = con.execute(sql, params)
        stamps = [i for i, d in enumerate(cursor.description or []) if str(d[1]) == "TIMESTAMP"]
        rows = cursor.fetchall()
    except duckdb.CatalogException:
        raise PharmaflowError(
            "the warehouse has no lot genealogy yet: run `pharmaflow build`"
        ) from None
    except duckdb.Error as exc:
        raise PharmaflowError(f"trace query failed: {str(exc).splitlines()[0]}") from None
    if not stamps:
        return rows
    fixed = []
    for row in rows:
        values = list(row)
        for i in stamps:
            if values[i] is not None:
                values[i] = values[i].replace(tzinfo=dt.UTC)
        fixed.append(tuple(values))
    return fixed


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return float(value)
    return value
