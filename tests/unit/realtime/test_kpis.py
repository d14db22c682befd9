"""KPI deltas and keyed state of a batch (`KpiExtractor`), against hand-built events."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pharmaflow.realtime.kpis import KPI_SCALE, UNKNOWN, BatchKpis, KeyedState, KpiExtractor
from pharmaflow.realtime.windows import US, from_us
from pharmaflow.realtime.windows import to_us as _us
from tests.realtime_events import Feed, at, batch, event

ORDER = "pharmacy.order."


class Run:
    """Feeds batches of one partition through a `KpiExtractor`, installing each batch's
    state changes as the store does after a commit."""

    def __init__(self, widths: tuple[int, ...] = (60, 300)) -> None:
        self.extractor = KpiExtractor(widths)
        self.state = KeyedState()
        self.feed = Feed(topic="t")

    def __call__(self, events: list[dict], late: list[bool] | None = None) -> BatchKpis:
        table, _ = batch(self.feed.place(events))
        n = table.num_rows
        codes = np.zeros(n, dtype=np.int64)
        t_us = table["event_time"].cast(pa.int64()).to_numpy()
        order = np.lexsort((table["source_offset"].to_numpy(), codes))
        mask = np.zeros(n, dtype=bool) if late is None else np.array(late)
        result = self.extractor.compute(table, codes, t_us, mask, order, {0: self.state})
        self.state.install(result.changes[0])
        return result


def windows(result: BatchKpis, kpi: str, width: int = 60) -> dict[tuple, float]:
    """(start, entity, label) -> value of one KPI and width."""
    t = result.windows
    out = {}
    for k, w, s, e, lab, v in zip(
        t["kpi"].to_pylist(), t["width_s"].to_pylist(), t["start_s"].to_pylist(),
        t["entity"].to_pylist(), t["label"].to_pylist(), t["value"].to_pylist(), strict=True,
    ):  # fmt: skip
        if k == kpi and w == width:
            out[(from_us(s * US), e, lab)] = v / KPI_SCALE.get(k, 1)
    return out


def total(result: BatchKpis, kpi: str, width: int = 60) -> float:
    return sum(windows(result, kpi, width).values())


def test_every_on_time_event_counts_in_its_window_of_each_width_and_late_ones_in_none():
    run = Run()
    result = run(
        [
            event("sales.sale.completed", at(0.5)),
            event("sales.sale.completed", at(0.7)),
            event("sales.sale.completed", at(3.2)),
            event("logistics.shipment.scanned", at(3.3), key="S-1", status="IN_TRANSIT"),
            event("sales.sale.completed", at(-300)),  # late: in no window
        ],
        late=[False, False, False, False, True],
    )
    sale = "sales.sale.completed"
    assert windows(result, "events") == {
        (at(0), "", sale): 2,
        (at(3), "", sale): 1,
        (at(3), "", "logistics.shipment.scanned"): 1,
    }
    assert windows(result, "events", 300) == {
        (at(0), "", sale): 3,
        (at(0), "", "logistics.shipment.scanned"): 1,
    }


def test_orders_move_forward_only_and_take_their_pharmacy_from_state():
    run = Run()
    o = "O-1"
    first = run(
        [
            event(ORDER + "placed", at(0), key=o, pharmacy_id="PH-7"),
            event(ORDER + "insurance_validated", at(5), key=o, status="PRIOR_AUTH_REQUIRED"),
            event(ORDER + "insurance_validated", at(50), key=o, status="APPROVED"),
            event(ORDER + "filled", at(70), key=o),
            # an older decision arriving after the fill: counted, but moves nothing back
            event(ORDER + "insurance_validated", at(20), key=o, status="REJECTED"),
        ]
    )
    order = run.state.orders[o]
    assert (order.stage, order.pharmacy_id) == ("filled", "PH-7")
    assert order.entered_us == _us(at(70))
    assert order.insurance_status == "APPROVED"  # the newest decision, not the last to arrive
    assert total(first, "order_stage_entered") == 5
    assert windows(first, "insurance_decisions", 300) == {
        (at(5), "PH-7", "PRIOR_AUTH_REQUIRED"): 1,
        (at(50), "PH-7", "APPROVED"): 1,
        (at(20), "PH-7", "REJECTED"): 1,
    }
    run([event(ORDER + "delivered", at(90), key=o), event(ORDER + "cancelled", at(95), key=o)])
    assert run.state.orders[o].stage == "delivered"  # the first terminal stage wins
    run([event(ORDER + "shipped", at(80), key=o)])  # older, after the end: still delivered
    assert run.state.orders[o].stage == "delivered"


def test_a_newer_event_of_the_same_stage_restarts_the_wait():
    run = Run()
    run(
        [
            event(ORDER + "placed", at(0), key="O-2"),
            event(ORDER + "insurance_validated", at(10), key="O-2", status="PRIOR_AUTH_REQUIRED"),
        ]
    )
    assert run.state.orders["O-2"].entered_us == _us(at(10))
    run([event(ORDER + "insurance_validated", at(2000), key="O-2", status="APPROVED")])
    assert run.state.orders["O-2"].entered_us == _us(at(2000))
    assert run.state.orders["O-2"].insurance_status == "APPROVED"


def test_an_order_seen_first_without_its_placed_event_is_unknown_until_placed_arrives():
    run = Run()
    result = run(
        [
            event(ORDER + "filled", at(30), key="O-3"),
            event(ORDER + "placed", at(0), key="O-3", pharmacy_id="PH-9"),  # out of order
            event(ORDER + "shipped", at(40), key="O-3"),
        ]
    )
    assert windows(result, "order_stage_entered", 300) == {
        (at(30), UNKNOWN, "filled"): 1,
        (at(0), "PH-9", "placed"): 1,
        (at(40), "PH-9", "shipped"): 1,
    }
    assert run.state.orders["O-3"].stage == "shipped"
    assert run.state.orders["O-3"].pharmacy_id == "PH-9"


def test_late_events_change_state_but_no_window():
    run = Run()
    result = run(
        [
            event(ORDER + "placed", at(0), key="O-4"),
            event(ORDER + "delivered", at(1), key="O-4"),
        ],
        late=[False, True],
    )
    assert run.state.orders["O-4"].stage == "delivered"
    assert windows(result, "order_stage_entered") == {(at(0), "PH-001", "placed"): 1}


def _reading(minutes: float, value: float, sensor: str = "S-1", batch_id: str = "B-1") -> dict:
    return event(
        "manufacturing.sensor.reading", at(minutes), key=batch_id, sensor_id=sensor, value=value,
        equipment_id="EQ-9", sensor_type="PRESSURE",
    )  # fmt: skip


def test_consecutive_out_of_spec_readings_run_across_batches():
    run = Run()
    result = run([_reading(0, 37.0), _reading(1, 40.0), _reading(2, 41.0)])  # spec 36-38
    sensor = run.state.sensors[("B-1", "S-1")]
    assert (sensor.consecutive, sensor.last_value, sensor.equipment_id) == (2, 41.0, "EQ-9")
    assert total(result, "sensor_readings") == 3
    assert windows(result, "sensor_out_of_spec") == {
        (at(1), "EQ-9", "PRESSURE"): 1,
        (at(2), "EQ-9", "PRESSURE"): 1,
    }
    run([_reading(3, 39.0)])
    assert run.state.sensors[("B-1", "S-1")].consecutive == 3
    older = run([_reading(2.5, 35.0)])  # out of spec, but older than the latest: no change
    assert run.state.sensors[("B-1", "S-1")].consecutive == 3
    assert total(older, "sensor_out_of_spec") == 1  # still counted in its window
    run([_reading(4, 37.5), _reading(5, 36.5, sensor="S-2")])
    assert run.state.sensors[("B-1", "S-1")].consecutive == 0
    assert run.state.sensors[("B-1", "S-2")].consecutive == 0


def _temp(minutes: float, celsius: float, shipment: str = "SH-1") -> dict:
    return event("logistics.temperature.reading", at(minutes), key=shipment, celsius=celsius)


def test_cold_chain_minutes_count_the_time_since_the_previous_reading_when_out_of_range():
    run = Run()
    result = run([_temp(0, 9.0), _temp(15, 9.5), _temp(30, 5.0), _temp(45, 8.5)])  # spec 2-8
    shipment = run.state.shipments["SH-1"]
    # first reading (out of range) counts 0; 15 min at 00:15; 00:30 is in range; 15 at 00:45
    assert shipment.minutes_out_us == 30 * 60 * US
    assert shipment.in_excursion and shipment.last_celsius == 8.5
    assert windows(result, "coldchain_minutes_out") == {
        (at(15), "SH-1", ""): 15.0,
        (at(45), "SH-1", ""): 15.0,
    }
    result = run([_temp(40, 12.0), _temp(60, 9.0)])  # 00:40 is older than 00:45: counts 0
    assert windows(result, "coldchain_minutes_out") == {(at(60), "SH-1", ""): 15.0}
    assert run.state.shipments["SH-1"].minutes_out_us == 45 * 60 * US


def test_shipments_carry_their_carrier_to_exceptions():
    run = Run()
    result = run(
        [
            event("logistics.shipment.created", at(0), key="SH-2", carrier_id="CR-9",
                  service_level="TWO_DAY", cold_chain=False),
            event("logistics.shipment.exception", at(5), key="SH-2", exception_code="DAMAGED"),
            event("logistics.shipment.exception", at(6), key="SH-X", exception_code="LOST"),
            event("logistics.shipment.delivered", at(9), key="SH-2"),
        ]
    )  # fmt: skip
    assert windows(result, "shipments_created") == {(at(0), "CR-9", "TWO_DAY"): 1}
    assert windows(result, "shipment_exceptions") == {
        (at(5), "CR-9", "DAMAGED"): 1,
        (at(6), UNKNOWN, "LOST"): 1,
    }
    shipment = run.state.shipments["SH-2"]
    assert (shipment.carrier_id, shipment.cold_chain, shipment.delivered) == ("CR-9", False, True)
    assert "SH-X" not in run.state.shipments


def test_lab_results_count_and_failures_are_kept():
    run = Run()
    result = run(
        [
            event("manufacturing.lab.result", at(0), key="B-7", test_id="T-1", outcome="PASS"),
            event("manufacturing.lab.result", at(1), key="B-7", test_id="T-2", outcome="FAIL",
                  test_name="Bacterial endotoxin"),
            event("manufacturing.lab.result", at(2), key="B-7", test_id="T-3",
                  outcome="CONDITIONAL"),
        ]
    )  # fmt: skip
    assert windows(result, "lab_results", 300) == {
        (at(0), "B-7", "PASS"): 1,
        (at(0), "B-7", "FAIL"): 1,
        (at(0), "B-7", "CONDITIONAL"): 1,
    }
    assert list(run.state.lab_failures) == [("B-7", "T-2")]
    assert run.state.lab_failures[("B-7", "T-2")].test_name == "Bacterial endotoxin"


def test_the_extracted_fields_never_include_the_patient():
    run = Run()
    table, _ = batch(run.feed.place([event(ORDER + "placed", at(0), key="O-9")]))
    fields = run.extractor.fields(table, np.ones(1, dtype=bool))
    assert "patient" not in fields.column_names
    assert not any("patient" in str(v) for row in fields.to_pylist() for v in row.values())


# -- the vectorised runs equal a plain sequential reading of the stream -------------------


def _reference(readings: list[tuple[str, int, float]]) -> tuple[dict, dict]:
    """Sensor runs and cold-chain minutes, one reading at a time (the definition)."""
    sensors: dict[str, tuple[int, int]] = {}  # sensor -> (latest time, run)
    minutes: dict[str, tuple[int, int]] = {}  # shipment -> (latest time, minutes µs)
    for key, t, value in readings:
        out = value > 8.0
        last, run_ = sensors.get(key, (None, 0))
        if last is None or t >= last:
            sensors[key] = (t, run_ + 1 if out else 0)
        last, total_us = minutes.get(key, (None, 0))
        if last is None or t >= last:
            minutes[key] = (t, total_us + (t - last if out and last is not None else 0))
    return (
        {k: r for k, (_t, r) in sensors.items()},
        {k: m for k, (_t, m) in minutes.items()},
    )


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["K1", "K2", "K3"]),
            st.integers(min_value=0, max_value=40),
            st.sampled_from([5.0, 9.0]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(min_value=1, max_value=40), max_size=4),
)
def test_vectorised_runs_equal_the_sequential_definition(readings, cuts):
    run = Run()
    events = []
    for key, minute, value in readings:
        events.append(
            event("manufacturing.sensor.reading", at(minute), key="B-1", sensor_id=key,
                  value=value, spec_min=2.0, spec_max=8.0)
        )  # fmt: skip
        events.append(_temp(minute, value, shipment=key))
    bounds = sorted({min(2 * c, len(events)) for c in cuts} | {0, len(events)})
    for lo, hi in itertools.pairwise(bounds):
        run(events[lo:hi])
    runs, minutes = _reference([(k, _us(at(m)), v) for k, m, v in readings])
    assert {s: rec.consecutive for (_b, s), rec in run.state.sensors.items()} == runs
    assert {k: rec.minutes_out_us for k, rec in run.state.shipments.items()} == minutes
