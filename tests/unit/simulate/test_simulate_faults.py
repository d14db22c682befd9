"""Injected faults are exactly what SimStats says, and never touch the genuine events."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from pharmaflow.simulate import SimConfig, simulate
from tests.unit.simulate.conftest import NO_FAULTS, Run, epoch_ms

ENVELOPE = (
    "event_id",
    "event_type",
    "event_version",
    "event_time",
    "source_system",
    "key",
    "payload",
)
NUMERIC = {
    "quantity",
    "days_supply",
    "value",
    "celsius",
    "rating",
    "nps",
    "batch_size_kg",
    "actual_yield_kg",
    "result",
    "copay_amount",
    "unit_price",
    "spec_min",
    "spec_max",
}
MINIMUM = {"quantity": 1, "days_supply": 1, "rating": 1, "nps": 0, "copay_amount": 0}
ABOVE_ZERO = {"batch_size_kg", "unit_price"}
MAXIMUM = {"rating": 5, "nps": 10}


def _contract_of(clean: Run) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Payload fields every event of a type has, and enum symbols, as the clean run shows."""
    fields: dict[str, set[str]] = {}
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in clean.events():
        keys = set(e["payload"])
        fields[e["event_type"]] = fields.get(e["event_type"], keys) & keys
        for name in ("status", "priority", "sensor_type", "outcome", "severity", "exception_code"):
            if name in e["payload"]:
                values[(e["event_type"], name)].add(e["payload"][name])
    return fields, values


def _violation(line: bytes, fields: dict[str, set[str]], enums: dict[Any, set[str]]) -> str | None:
    """The kind of contract rule a line breaks (None if it looks valid)."""
    try:
        e = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "bad_json"
    if any(name not in e for name in ENVELOPE):
        return "missing_field"
    if e["event_type"] not in fields:
        return "unknown_event_type"
    p = e["payload"]
    if not isinstance(e["event_time"], str) or any(isinstance(p.get(n), str) for n in NUMERIC):
        return "wrong_type"
    if not fields[e["event_type"]] <= set(p):
        return "missing_field"
    if any(p[name] not in symbols for (t, name), symbols in enums.items() if t == e["event_type"]):
        return "unknown_enum"
    if (
        any(n in p and p[n] < low for n, low in MINIMUM.items())
        or any(n in p and p[n] <= 0 for n in ABOVE_ZERO)
        or any(n in p and p[n] > high for n, high in MAXIMUM.items())
    ):
        return "out_of_range"
    return None


@pytest.fixture(scope="module")
def same_without_faults(faulty_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:
    config = faulty_run.config.model_copy(update=NO_FAULTS)
    path = tmp_path_factory.mktemp("same") / "events.jsonl"
    stats = simulate(config, path)
    return Run(config, path, stats, path.read_bytes().splitlines())


def test_counts_reconcile(faulty_run: Run) -> None:
    stats = faulty_run.stats
    assert len(faulty_run.lines) == stats.lines
    assert stats.lines == stats.valid_unique + stats.duplicates + stats.malformed
    assert stats.valid_unique == sum(stats.by_type.values())
    assert sum(stats.malformed_by_kind.values()) == stats.malformed
    assert set(stats.malformed_by_kind) == {
        "bad_json",
        "missing_field",
        "wrong_type",
        "unknown_enum",
        "unknown_event_type",
        "out_of_range",
    }
    assert min(stats.duplicates, stats.late, stats.out_of_order, stats.malformed) > 0


def test_faults_only_add_lines_to_the_genuine_stream(faulty_run: Run, same_without_faults: Run):
    genuine = Counter(same_without_faults.lines)
    assert max(genuine.values()) == 1
    seen = Counter(faulty_run.lines)
    assert all(seen[line] >= 1 for line in genuine)  # nothing genuine lost or altered
    extra = seen - genuine
    duplicates = sum(n for line, n in extra.items() if line in genuine)
    malformed = [line for line in extra if line not in genuine]
    assert duplicates == faulty_run.stats.duplicates
    assert len(malformed) == faulty_run.stats.malformed
    assert all(extra[line] == 1 for line in malformed)  # malformed lines are never repeated
    assert faulty_run.stats.by_type == same_without_faults.stats.by_type


def test_duplicates_come_after_their_original(faulty_run: Run) -> None:
    first_seen: dict[bytes, int] = {}
    repeats = 0
    for position, line in enumerate(faulty_run.lines):
        if line in first_seen:
            repeats += 1
            assert first_seen[line] < position
        first_seen.setdefault(line, position)
    assert repeats == faulty_run.stats.duplicates


def test_each_malformed_line_breaks_the_contract_the_stats_say(
    faulty_run: Run, same_without_faults: Run
) -> None:
    fields, enums = _contract_of(same_without_faults)
    genuine = set(same_without_faults.lines)
    genuine_ids = {e["event_id"] for e in same_without_faults.events()}
    kinds: Counter[str] = Counter()
    for line in faulty_run.lines:
        if line in genuine:
            continue
        kind = _violation(line, fields, enums)
        assert kind is not None, line
        kinds[kind] += 1
        if kind != "bad_json":
            assert orjson.loads(line)["event_id"] not in genuine_ids  # a fresh id
    assert kinds == faulty_run.stats.malformed_by_kind
    assert all(_violation(line, fields, enums) is None for line in genuine)


def test_out_of_order_pairs_are_exactly_the_counted_ones(tmp_path: Path) -> None:
    config = SimConfig(seed=8, days=2, scale=0.1, **{**NO_FAULTS, "out_of_order_rate": 0.05})
    stats = simulate(config, tmp_path / "o.jsonl")
    last: dict[str, int] = {}
    descents = 0
    for line in (tmp_path / "o.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        at = epoch_ms(e["event_time"])
        descents += at < last.get(e["key"], at)
        last[e["key"]] = at
    assert descents == stats.out_of_order > 0


def test_late_events_arrive_hours_after_they_happened(tmp_path: Path) -> None:
    config = SimConfig(seed=8, days=2, scale=0.1, **{**NO_FAULTS, "late_rate": 0.05})
    stats = simulate(config, tmp_path / "l.jsonl")
    newest = 0
    behind = 0
    for line in (tmp_path / "l.jsonl").read_bytes().splitlines():
        at = epoch_ms(orjson.loads(line)["event_time"])
        behind += at < newest - 3_600_000
        newest = max(newest, at)
    assert 0.9 * stats.late <= behind <= stats.late


def test_without_faults_the_file_is_clean_and_in_arrival_order(clean_run: Run) -> None:
    stats = clean_run.stats
    assert stats.duplicates == stats.malformed == stats.late == stats.out_of_order == 0
    assert stats.malformed_by_kind == {}
    last: dict[str, int] = {}
    for e in clean_run.events():  # every line parses
        at = epoch_ms(e["event_time"])
        assert at >= last.get(e["key"], at)
        last[e["key"]] = at
