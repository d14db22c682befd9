"""The simulated business flow is coherent: ids exist, lifecycles are ordered, lots trace."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

import pytest

from pharmaflow.contracts.reference import load_reference
from tests.unit.simulate.conftest import PlantWeek, Run, epoch_ms

KEY_FIELD = {
    "pharmacy": "order_id",
    "manufacturing.batch.status": "batch_id",
    "manufacturing.sensor.reading": "batch_id",
    "manufacturing.lab.result": "batch_id",
    "manufacturing.deviation.opened": "batch_id",
    "manufacturing.deviation.closed": "batch_id",
    "logistics": "shipment_id",
    "feedback": "survey_id",
    "sales": "sale_id",
}
ENVELOPE = {
    "event_id",
    "event_type",
    "event_version",
    "event_time",
    "source_system",
    "key",
    "payload",
}
FINAL = {"COMPLETED", "FAILED", "ON_HOLD"}


def _key_field(event_type: str) -> str:
    return KEY_FIELD.get(event_type) or KEY_FIELD[event_type.split(".")[0]]


def _by_key(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        grouped[e["key"]].append(e)
    return grouped


def _times(events: list[dict[str, Any]], event_type: str, **match: Any) -> list[int]:
    return [
        epoch_ms(e["event_time"])
        for e in events
        if e["event_type"] == event_type and all(e["payload"].get(k) == v for k, v in match.items())
    ]


def test_every_line_is_an_envelope_inside_the_window(clean_run: Run) -> None:
    start = datetime(2026, 11, 1).timestamp() * 1000
    events = clean_run.events()
    assert len(events) == clean_run.stats.lines == clean_run.stats.valid_unique
    assert len({e["event_id"] for e in events}) == len(events)
    stamps = [e["event_time"] for e in events]
    assert sum(s.endswith("Z") for s in stamps) > 0.9 * len(stamps)
    assert any(s[-6] in "+-" for s in stamps)  # some producers write local time with offset
    for e in events:
        assert ENVELOPE <= set(e) <= ENVELOPE | {"trace_id"}
        assert e["event_version"] == 1
        assert e["key"] == e["payload"][_key_field(e["event_type"])]
        assert start <= epoch_ms(e["event_time"]) < start + 7 * 86_400_000
    assert {e["event_type"].split(".")[0] for e in events} == {
        "pharmacy",
        "manufacturing",
        "logistics",
        "feedback",
        "sales",
    }


def test_reference_ids_all_exist_in_the_seeds(clean_run: Run) -> None:
    ref = load_reference()
    ndcs = {p.ndc for p in ref.products}
    facilities = {f.facility_id for f in ref.facilities}
    for e in clean_run.events():
        p = e["payload"]
        assert p.get("ndc", next(iter(ndcs))) in ndcs
        for field in (
            "pharmacy_id",
            "site_id",
            "origin_facility_id",
            "destination_facility_id",
            "facility_id",
        ):
            assert p.get(field, "PL-01") in facilities
        assert p.get("equipment_id", ref.equipment[0].equipment_id) in {
            q.equipment_id for q in ref.equipment
        }
        assert p.get("carrier_id", "CR-UPS") in {c.carrier_id for c in ref.carriers}
        assert p.get("payer_id", "PY-001") in {y.payer_id for y in ref.payers}


def test_order_lifecycles_are_ordered(clean_run: Run) -> None:
    orders = _by_key([e for e in clean_run.events() if e["event_type"].startswith("pharmacy.")])
    statuses: set[str] = set()
    for events in orders.values():
        placed = _times(events, "pharmacy.order.placed")
        validated = _times(events, "pharmacy.order.insurance_validated")
        assert len(placed) == 1
        assert all(placed[0] < t for t in validated)
        checks = [e["payload"] for e in events if e["event_type"].endswith("insurance_validated")]
        statuses.update(c["status"] for c in checks)
        for check in checks:
            assert ("reject_code" in check) == (check["status"] == "REJECTED")
            assert check["copay_amount"] >= 0
        if checks and checks[0]["status"] == "PRIOR_AUTH_REQUIRED" and len(checks) > 1:
            assert checks[1]["status"] == "APPROVED"
            assert 86_400_000 <= validated[1] - validated[0] <= 3 * 86_400_000
        chain = [
            validated[-1:],
            _times(events, "pharmacy.order.filled"),
            _times(events, "pharmacy.order.shipped"),
            _times(events, "pharmacy.order.delivered"),
        ]
        present = [c[0] for c in chain if c]
        assert present == sorted(present) and len(set(present)) == len(present)
        assert [bool(c) for c in chain] == sorted((bool(c) for c in chain), reverse=True)
        for cancelled in _times(events, "pharmacy.order.cancelled"):
            assert cancelled > max(validated)
    assert statuses == {"APPROVED", "REJECTED", "PRIOR_AUTH_REQUIRED"}


@pytest.mark.parametrize("run_name", ["clean_run", "plant_week"])
def test_batches_run_in_order_and_yields_are_plausible(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    """Every batch's lifecycle is coherent: in the small clean run (serialised and parsed) and
    in a plant-scale week, whose ~90 batches end in each of the final statuses."""
    run: Run | PlantWeek = request.getfixturevalue(run_name)
    events = run.events()
    batches = _by_key([e for e in events if e["event_type"].startswith("manufacturing.")])
    finals: set[str] = set()
    for batch_id, group in batches.items():
        status = [e for e in group if e["event_type"] == "manufacturing.batch.status"]
        sequence = [e["payload"]["status"] for e in status]
        times = [epoch_ms(e["event_time"]) for e in status]
        assert sequence[:2] == ["QUEUED", "IN_PROGRESS"][: len(sequence)], batch_id
        assert len(sequence) <= 3 and set(sequence[2:]) <= FINAL
        assert times == sorted(times) and len(set(times)) == len(times)
        finals.update(sequence[2:])
        for e in status:
            p = e["payload"]
            assert p["batch_size_kg"] > 0
            if p["status"] == "COMPLETED":
                assert 0.8 <= p["actual_yield_kg"] / p["batch_size_kg"] <= 1.05
            else:
                assert "actual_yield_kg" not in p
        end = times[2] if len(times) == 3 else float("inf")
        readings = _times(group, "manufacturing.sensor.reading")
        assert all(times[1] < t < end for t in readings)
        assert all(t > end for t in _times(group, "manufacturing.lab.result"))
        opened = {
            e["payload"]["deviation_id"]: epoch_ms(e["event_time"])
            for e in group
            if e["event_type"] == "manufacturing.deviation.opened"
        }
        for e in group:
            if e["event_type"] == "manufacturing.deviation.closed":
                assert epoch_ms(e["event_time"]) > opened[e["payload"]["deviation_id"]]
    assert finals == FINAL if run_name == "plant_week" else finals <= FINAL


def test_sensor_drift_and_lab_outcomes_follow_their_specs(plant_week: PlantWeek) -> None:
    outside: set[str] = set()
    for e in plant_week.of_type("manufacturing.sensor.reading"):
        p = e["payload"]
        if not p["spec_min"] <= p["value"] <= p["spec_max"]:
            outside.add(p["batch_id"])
    assert outside, "some batches drift out of spec"
    opened = {
        e["payload"]["batch_id"] for e in plant_week.of_type("manufacturing.deviation.opened")
    }
    assert outside <= opened  # every excursion is investigated
    outcomes: dict[str, int] = defaultdict(int)
    for e in plant_week.of_type("manufacturing.lab.result"):
        p = e["payload"]
        outcomes[p["outcome"]] += 1
        inside = p["spec_min"] <= p["result"] <= p["spec_max"]
        assert inside == (p["outcome"] != "FAIL")
    assert set(outcomes) == {"PASS", "FAIL", "CONDITIONAL"}
    assert 0.003 <= outcomes["FAIL"] / sum(outcomes.values()) <= 0.03


def test_a_plant_week_is_right_first_time_with_each_failure_mode_present(
    plant_week: PlantWeek,
) -> None:
    """Like a plant that runs well: over 90 % of finished batches complete with every lab
    result PASS and every sensor reading in spec (gold's batch_pass_rate), yet a week shows
    each way a batch goes wrong, each in a few percent of batches."""
    final: dict[str, str] = {}
    for e in plant_week.of_type("manufacturing.batch.status"):
        final[e["payload"]["batch_id"]] = e["payload"]["status"]  # events are in time order
    labs: dict[str, set[str]] = defaultdict(set)
    for e in plant_week.of_type("manufacturing.lab.result"):
        labs[e["payload"]["batch_id"]].add(e["payload"]["outcome"])
    drifted = {
        e["payload"]["batch_id"]
        for e in plant_week.of_type("manufacturing.sensor.reading")
        if not e["payload"]["spec_min"] <= e["payload"]["value"] <= e["payload"]["spec_max"]
    }
    finished = [b for b, status in final.items() if status in ("COMPLETED", "FAILED")]
    right_first_time = [
        b for b in finished if final[b] == "COMPLETED" and labs[b] == {"PASS"} and b not in drifted
    ]
    assert len(final) > 80
    assert 0.9 <= len(right_first_time) / len(finished) <= 0.98
    modes = Counter(final.values())
    modes["lab FAIL"] = sum("FAIL" in outcomes for outcomes in labs.values())
    modes["lab CONDITIONAL"] = sum("CONDITIONAL" in outcomes for outcomes in labs.values())
    modes["sensor drift"] = len(drifted)
    for mode in ("FAILED", "ON_HOLD", "lab FAIL", "lab CONDITIONAL", "sensor drift"):
        assert 1 <= modes[mode] <= 0.07 * len(final), (mode, modes)
    # QA releases exactly the completed batches without a failed lab result
    released = {r.lot_number for r in plant_week.releases}
    lots = {
        e["payload"]["batch_id"]: e["payload"]["lot_number"]
        for e in plant_week.of_type("manufacturing.batch.status")
    }
    assert released <= {lots[b] for b in final if final[b] == "COMPLETED" and "FAIL" not in labs[b]}


def test_shipment_events_are_ordered_and_cold_chain_is_logged(clean_run: Run) -> None:
    events = clean_run.events()
    ref = load_reference()
    cold_capable = {c.carrier_id for c in ref.carriers if c.cold_chain_capable}
    shipments = _by_key([e for e in events if e["event_type"].startswith("logistics.")])
    codes: set[str] = set()
    for group in shipments.values():
        created = [e for e in group if e["event_type"] == "logistics.shipment.created"]
        assert len(created) == 1
        made, order = epoch_ms(created[0]["event_time"]), created[0]["payload"]
        assert ("destination_facility_id" in order) != ("order_id" in order)
        scans = _times(group, "logistics.shipment.scanned")
        delivered = _times(group, "logistics.shipment.delivered")
        done = delivered[0] if delivered else float("inf")
        assert all(made < t < done for t in scans)
        assert all(made < t < done for t in _times(group, "logistics.shipment.exception"))
        readings = [e for e in group if e["event_type"] == "logistics.temperature.reading"]
        assert bool(readings) <= order["cold_chain"]
        if order["cold_chain"]:
            assert order["carrier_id"] in cold_capable
        if readings:
            assert all(min(scans) < epoch_ms(r["event_time"]) < done for r in readings)
        excursion = any(not 2.0 <= r["payload"]["celsius"] <= 8.0 for r in readings)
        flagged = [e for e in group if e["event_type"] == "logistics.shipment.exception"]
        lost = [
            epoch_ms(e["event_time"]) for e in flagged if e["payload"]["exception_code"] == "LOST"
        ]
        if lost:  # nothing happens to a lost shipment after the carrier declares it lost
            assert not delivered
            assert all(epoch_ms(e["event_time"]) <= lost[0] for e in group)
        codes.update(e["payload"]["exception_code"] for e in flagged)
        assert excursion == any(e["payload"]["exception_code"] == "TEMP_EXCURSION" for e in flagged)
    assert {"DELAY", "TEMP_EXCURSION"} <= codes


def test_every_filled_lot_reached_that_pharmacy_by_shipment_first(clean_run: Run) -> None:
    events = clean_run.events()
    created = {
        e["key"]: e["payload"] for e in events if e["event_type"] == "logistics.shipment.created"
    }
    arrivals: dict[tuple[str, str], int] = {}
    for e in events:
        if e["event_type"] == "logistics.shipment.delivered":
            shipment = created[e["key"]]
            for lot in shipment["lot_numbers"]:
                where = shipment.get("destination_facility_id")
                if where:
                    at = epoch_ms(e["event_time"])
                    arrivals[(where, lot)] = min(at, arrivals.get((where, lot), at))
    pharmacy_of = {
        e["key"]: e["payload"]["pharmacy_id"]
        for e in events
        if e["event_type"] == "pharmacy.order.placed"
    }
    fills = [e for e in events if e["event_type"] == "pharmacy.order.filled"]
    assert fills
    for fill in fills:
        arrived = arrivals.get((pharmacy_of[fill["key"]], fill["payload"]["lot_number"]))
        assert arrived is not None and arrived < epoch_ms(fill["event_time"])
    lot_of = {f["key"]: f["payload"]["lot_number"] for f in fills}
    for shipment in created.values():
        if "order_id" in shipment:
            assert shipment["lot_numbers"] == [lot_of[shipment["order_id"]]]


def test_lots_made_in_the_window_reach_patients(clean_run: Run) -> None:
    """Lot genealogy end to end: batch -> plant shipment -> DC -> pharmacy -> order."""
    events = clean_run.events()
    made = {
        e["payload"]["lot_number"]
        for e in events
        if e["event_type"] == "manufacturing.batch.status"
    }
    dispensed = {
        e["payload"]["lot_number"] for e in events if e["event_type"] == "pharmacy.order.filled"
    }
    assert made & dispensed


def test_surveys_follow_deliveries_and_track_lateness(clean_run: Run) -> None:
    events = clean_run.events()
    delivered = {
        e["key"]: epoch_ms(e["event_time"])
        for e in events
        if e["event_type"] == "pharmacy.order.delivered"
    }
    surveys = clean_run.of_type("feedback.survey.submitted")
    assert surveys
    for s in surveys:
        p = s["payload"]
        assert epoch_ms(s["event_time"]) > delivered[p["order_id"]]
        assert 1 <= p["rating"] <= 5 and 0 <= p["nps"] <= 10
    created = {
        e["payload"].get("order_id"): e["payload"]
        for e in events
        if e["event_type"] == "logistics.shipment.created"
    }
    late, on_time = [], []
    for s in surveys:
        shipment = created[s["payload"]["order_id"]]
        promised = epoch_ms(shipment["promised_delivery_time"])
        (late if delivered[s["payload"]["order_id"]] > promised + 3_600_000 else on_time).append(
            s["payload"]["rating"]
        )
    assert on_time and sum(on_time) / len(on_time) >= 4
    if len(late) >= 3:
        assert sum(late) / len(late) < sum(on_time) / len(on_time)


def test_sales_have_weekly_seasonality_and_promotions(clean_run: Run) -> None:
    per_day: dict[date, int] = defaultdict(int)
    promoted = 0
    for e in clean_run.of_type("sales.sale.completed"):
        p = e["payload"]
        assert p["quantity"] > 0 and p["unit_price"] > 0
        promoted += "promotion_code" in p
        per_day[datetime.fromisoformat(e["event_time"]).date()] += 1
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert promoted > 0
    assert sum(weekend) / len(weekend) < 0.8 * sum(weekday) / len(weekday)
