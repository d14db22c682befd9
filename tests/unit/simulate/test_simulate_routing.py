"""`generate()`: the file's lines in memory, each with its arrival time and source event, so a
publisher routes every line (duplicates and malformed ones too) to its source's topic and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from pharmaflow.broker.topics import topic_for
from pharmaflow.simulate import SimOutput, generate, simulate
from pharmaflow.simulate.publish import expected_by_topic
from tests.unit.simulate.conftest import FAULTY, Run


@pytest.fixture(scope="module")
def output() -> SimOutput:
    return generate(FAULTY)


def _decoded(line: bytes) -> dict | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def test_generated_lines_are_the_file_byte_for_byte(output: SimOutput, faulty_run: Run) -> None:
    assert [output.lines[r] for r in output.rows.tolist()] == faulty_run.lines
    stats = dict(vars(output.stats))
    expected = dict(vars(faulty_run.stats))
    stats.pop("seconds"), expected.pop("seconds")
    assert stats == expected
    assert len(output) == faulty_run.stats.lines


def test_simulate_still_writes_the_same_bytes(output: SimOutput, tmp_path: Path) -> None:
    """The refactor into generate + write keeps file output unchanged and deterministic."""
    simulate(FAULTY, tmp_path / "a.jsonl")
    expected = b"".join(output.lines[r] + b"\n" for r in output.rows.tolist())
    assert (tmp_path / "a.jsonl").read_bytes() == expected


def test_arrival_times_follow_the_output_order(output: SimOutput) -> None:
    assert output.arrival_ms.dtype == np.int64
    assert np.all(np.diff(output.arrival_ms) >= 0)
    assert output.arrival_ms[0] >= FAULTY.start_ms


def test_genuine_lines_and_duplicates_carry_their_own_type_and_key(output: SimOutput) -> None:
    n = output.stats.valid_unique
    types, keys = output.event_types(), output.keys()
    genuine = 0
    for i, row in enumerate(output.rows.tolist()):
        if row >= n:
            continue
        genuine += 1
        env = orjson.loads(output.lines[row])
        assert output.sources[i] == row
        assert (types[i], keys[i]) == (env["event_type"], env["key"])
    assert genuine == output.stats.valid_unique + output.stats.duplicates


def test_every_malformed_line_is_routed_with_its_source_event(output: SimOutput) -> None:
    n = output.stats.valid_unique
    types, keys = output.event_types(), output.keys()
    malformed = [i for i, row in enumerate(output.rows.tolist()) if row >= n]
    assert len(malformed) == output.stats.malformed > 0
    undecodable = 0
    for i in malformed:
        source = int(output.sources[i])
        assert 0 <= source < n
        original = orjson.loads(output.lines[source])
        assert (types[i], keys[i]) == (original["event_type"], original["key"])
        broken = _decoded(output.lines[output.rows[i]])
        if broken is None:  # bad_json: a prefix of the source with a fresh event id
            undecodable += 1
            continue
        # every other kind breaks one rule and keeps the rest of the source event
        assert broken.get("key", original["key"]) == original["key"]
        if "event_type" in broken:
            domain = broken["event_type"].split(".", 1)[0]
            assert topic_for(domain + ".x") == topic_for(types[i])
        assert broken["event_id"] != original["event_id"]
    assert undecodable == output.stats.malformed_by_kind["bad_json"]


def test_expected_topic_counts_cover_every_line(output: SimOutput) -> None:
    by_topic = expected_by_topic(output)
    assert sum(by_topic.values()) == output.stats.lines
    assert set(by_topic) <= {
        "pharma.pharmacy",
        "pharma.manufacturing",
        "pharma.logistics",
        "pharma.feedback",
        "pharma.sales",
    }
    per_line = {}
    for event_type in output.event_types():
        per_line[topic_for(event_type)] = per_line.get(topic_for(event_type), 0) + 1
    assert per_line == by_topic
