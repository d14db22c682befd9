"""What a build set aside, and which events a failing data test is about.

A build never fails on a bad event: silver models leave out the rows that break a rule and
`silver._rejected` lists them (gold facts do the same in `gold._rejected`; see the dbt
project's README, "Set-aside rows"). The runner reports those per (model, rule). When a test
still fails, "not_null_silver_x_order_id: fail" says nothing the user can act on: the test's
compiled SQL is run again, with a limit, to name the events (event_id) or, where the failing
rows have none, their key columns (`*_id`). Values of other columns are never shown: they may be
patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.warehouse.targets import Query

REJECTED_TABLES = (("silver", "_rejected"), ("gold", "_rejected"))
MAX_NAMED = 10


@dataclass(frozen=True)
class SetAside:
    """Rows a table of set-aside events holds for one (model, rule)."""

    table: str
    model: str
    rule: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "model": self.model, "rule": self.rule, "rows": self.rows}


@dataclass(frozen=True)
class FailedTest:
    """A data test that failed (or errored), with the events it found, when it can tell."""

    name: str
    status: str
    event_ids: list[str]
    keys: list[str]  # "order_id=O-1" for failing rows without an event_id

    def describe(self) -> str:
        if self.event_ids:
            return f"{self.name}: {self.status}; event_id {', '.join(self.event_ids)}"
        if self.keys:
            return f"{self.name}: {self.status}; {', '.join(self.keys)}"
        return f"{self.name}: {self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.name,
            "status": self.status,
            "event_ids": self.event_ids,
            "keys": self.keys,
        }


def set_aside_counts(query: Query) -> list[SetAside]:
    """Rows per (model, rule) in silver._rejected and gold._rejected (those that exist)."""
    _, present = query(
        "select table_schema, table_name from information_schema.tables "
        "where table_name = '_rejected' and table_schema in ('silver', 'gold')"
    )
    found = {(str(s), str(t)) for s, t in present}
    out: list[SetAside] = []
    for schema, table in REJECTED_TABLES:
        if (schema, table) not in found:
            continue
        _, rows = query(
            f'select model, rule, count(*) from "{schema}"."{table}" group by 1, 2 order by 1, 2'
        )
        out += [SetAside(f"{schema}.{table}", str(m), str(r), int(n)) for m, r, n in rows]
    return out


def failing_rows(
    query: Query, compiled_sql: str, limit: int = MAX_NAMED
) -> tuple[list[str], list[str]]:
    """(event ids, key descriptions) of the rows a test's SQL returns, at most `limit`.

    Rows with an event_id column give their distinct ids. Otherwise every column named `*_id`
    (or `key`) describes a row; other values are never returned."""
    failing = f"(\n{compiled_sql.strip().rstrip(';')}\n) as failing"
    columns, _ = query(f"select * from {failing} limit 0")
    names = [c.lower() for c in columns]
    if "event_id" in names:
        column = columns[names.index("event_id")]
        _, rows = query(
            f'select distinct "{column}" from {failing} where "{column}" is not null '
            f"order by 1 limit {limit}"
        )
        return [str(r[0]) for r in rows], []
    key_columns = [i for i, c in enumerate(names) if c.endswith("_id") or c == "key"]
    if not key_columns:
        return [], []
    selected = ", ".join(f'"{columns[i]}"' for i in key_columns)
    _, rows = query(f"select distinct {selected} from {failing} order by 1 limit {limit}")
    keys = [
        " ".join(f"{names[i]}={v}" for i, v in zip(key_columns, row, strict=True)) for row in rows
    ]
    return [], keys


def events_behind(
    query: Query, compiled_sql: str, relation: str, column: str, limit: int = MAX_NAMED
) -> list[str]:
    """The event ids of `relation` whose `column` holds a value the failing rows show in their
    first column (a not_null, accepted_values, unique or relationships test returns the
    offending values, not the events)."""
    sql = (
        f"select distinct kept.event_id from {relation} as kept where exists (\n"
        f"select 1 from ({compiled_sql.strip().rstrip(';')}) as failing (offending)\n"
        f'where kept."{column}" is not distinct from failing.offending) '
        f"order by 1 limit {limit}"
    )
    _, rows = query(sql)
    return [str(r[0]) for r in rows]


def describe_failed_test(
    query: Query | None, node: Any, status: str, manifest_nodes: dict[str, Any]
) -> FailedTest:
    """The failing test with the events it found; the bare name when they cannot be read."""
    name = str(node.name)
    compiled = getattr(node, "compiled_code", None)
    if query is None or status != "fail" or not compiled:
        return FailedTest(name, status, [], [])
    try:
        event_ids, keys = failing_rows(query, compiled)
        if not event_ids:
            attached = manifest_nodes.get(getattr(node, "attached_node", None) or "", {})
            column = getattr(node, "column_name", None)
            relation = attached.get("relation_name")
            model_columns = {c.lower() for c in (attached.get("columns") or {})}
            if relation and column and "event_id" in model_columns:
                event_ids = events_behind(query, compiled, relation, column)
        return FailedTest(name, status, event_ids, [] if event_ids else keys)
    except Exception:  # a report about a failure must not fail itself
        return FailedTest(name, status, [], [])


def load_manifest_nodes(target_dir: Path) -> dict[str, Any]:
    path = target_dir / "manifest.json"
    if not path.exists():
        return {}
    return dict(orjson.loads(path.read_bytes()).get("nodes", {}))
