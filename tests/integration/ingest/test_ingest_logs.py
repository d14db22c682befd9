"""A real small ingest's run log: every line JSON under the run's trace id, batch lines with
the trace ids that really are in the events, quarantine lines with reason codes, no PHI."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from pharmaflow import logs, tracing
from pharmaflow.config import Settings
from pharmaflow.ingest import lake_commit
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sources import open_sources
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.people import patient_pool
from pharmaflow.simulate.simulator import simulate
from tests.factories import PATIENT, event, order_placed
from tests.phi_scan import leaks, phi_values, record_phi_values

TINY = SimConfig(seed=5, days=1, scale=0.05, duplicate_rate=0.02, malformed_rate=0.04)
HOSTILE_TRACE = 'Zuleika Okonkwo\n{"level":"CRITICAL","msg":"forged"}'


@pytest.fixture(scope="module")
def tiny_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's events (faults on), then hand-made ones whose trace ids are known:
    one landed, one rejected with patient data in it, one with a hostile trace id, one not
    JSON at all (a patient's name in it)."""
    path = tmp_path_factory.mktemp("logs-input") / "events.jsonl"
    simulate(TINY, path)
    extra = [
        order_placed(PATIENT, "ORD-LOG-1") | {"trace_id": "tr-landed-1"},
        event("pharmacy.order.placed", payload__quantity="two", trace_id="tr-bad-1"),
        event("pharmacy.order.placed", payload__quantity="three", trace_id=HOSTILE_TRACE),
    ]
    with path.open("ab") as out:
        out.write(b"".join(orjson.dumps(e) + b"\n" for e in extra))
        out.write(b'{"patient": {"first_name": "Zuleika", "phone": "(415) 555-0134"\n')
    return path


@pytest.fixture
def run_log(settings: Settings) -> Iterator[Path]:
    """The data dir's run log, configured as the CLI does (JSON), undone afterwards."""
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    path = logs.configure(settings.logs_dir, "INFO")
    assert path is not None
    yield path
    logs.reset()
    root.setLevel(level)


def ingest(settings: Settings, path: Path) -> IngestResult:
    engine = IngestEngine(settings.model_copy(update={"batch_size": 400}))
    return engine.run(open_sources(str(path), engine.registry))


def read_log(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is JSON


def input_trace_ids(path: Path) -> set[str]:
    found = set()
    for line in path.read_bytes().splitlines():
        try:
            trace_id = orjson.loads(line).get("trace_id")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(trace_id, str):
            found.add(trace_id)
    return found


def test_every_line_is_json_under_the_run_trace(settings, run_log, tiny_input):
    result = ingest(settings, tiny_input)
    got = read_log(run_log)
    assert got and all({"ts", "level", "logger", "msg"} <= set(line) for line in got)
    [run_trace] = {line.get("trace_id") for line in got}
    assert tracing.is_trace_id(run_trace)
    assert {line["writer"] for line in got} == {"files"}
    [done] = [line for line in got if line["msg"] == "ingest_done"]
    assert (done["landed"], done["quarantined"]) == (result.landed, result.quarantined)
    assert done["conserved"] is True


def test_batch_lines_carry_the_trace_ids_of_their_events(settings, run_log, tiny_input):
    result = ingest(settings, tiny_input)
    batches = [line for line in read_log(run_log) if line["msg"] == "batch_committed"]
    assert len(batches) == result.batches > 1
    assert sum(b["counts"]["landed"] for b in batches) == result.landed
    assert sum(b["counts"]["quarantined"] for b in batches) == result.quarantined
    sent = input_trace_ids(tiny_input)
    bronze = ds.dataset(settings.lake_dir / "bronze", format="parquet", partitioning=None)
    table = bronze.to_table(columns=["batch_id", "trace_id"])
    listed: set[str] = set()
    for line in batches:
        mine = table.filter(pc.equal(table["batch_id"], line["batch_id"]))["trace_id"]
        actual = set(pc.unique(mine).drop_null().to_pylist())
        assert line["event_trace_ids_distinct"] == len(actual)
        ids = line["event_trace_ids"]
        assert len(ids) == len(set(ids)) == min(lake_commit.TRACE_IDS_LOGGED, len(actual))
        assert set(ids) <= actual <= sent
        listed.update(ids)
    assert listed and listed <= sent


def test_a_caller_bound_trace_is_the_run_trace(settings, run_log, tiny_input):
    with logs.bind(trace_id="build-trace-1"):
        ingest(settings, tiny_input)
    assert {line["trace_id"] for line in read_log(run_log)} == {"build-trace-1"}


def test_quarantine_lines_carry_ids_and_reason_codes(settings, run_log, tiny_input):
    result = ingest(settings, tiny_input)
    got = read_log(run_log)
    rejected = [line for line in got if line["msg"] == "event_quarantined"]
    assert len(rejected) == result.quarantined  # every batch under the per-batch cap
    assert Counter(line["reason_code"] for line in rejected) == result.quarantine_reasons
    assert all(line["reason_code"] and "batch_id" in line for line in rejected)
    quarantine = ds.dataset(settings.lake_dir / "quarantine", format="parquet", partitioning=None)
    q = quarantine.to_table(columns=["event_id", "event_type", "reason_code"])
    assert Counter(
        (line["event_id"], line["event_type"], line["reason_code"]) for line in rejected
    ) == Counter(zip(*(q[c].to_pylist() for c in q.column_names), strict=True))
    [bad] = [line for line in rejected if line["event_trace_id"] == "tr-bad-1"]
    assert bad["reason_code"] == "wrong_type" and bad["event_type"] == "pharmacy.order.placed"
    assert all(line["event_trace_id"] != HOSTILE_TRACE for line in rejected)
    assert all(
        line["event_trace_id"] is None or line["event_trace_id"] in input_trace_ids(tiny_input)
        for line in rejected
    )
    assert not [line for line in got if line["msg"] == "quarantine_unlisted"]


def test_quarantine_lines_are_capped_per_batch(settings, run_log, tiny_input, monkeypatch):
    monkeypatch.setattr(lake_commit, "QUARANTINE_LINES", 2)
    result = ingest(settings, tiny_input)
    got = read_log(run_log)
    per_batch = Counter(line["batch_id"] for line in got if line["msg"] == "event_quarantined")
    assert per_batch and max(per_batch.values()) <= 2
    summaries = [line for line in got if line["msg"] == "quarantine_unlisted"]
    assert summaries
    for line in summaries:
        assert per_batch[line["batch_id"]] == 2
        assert sum(line["reasons"].values()) == line["unlisted"] > 0
    listed = sum(per_batch.values()) + sum(line["unlisted"] for line in summaries)
    assert listed == result.quarantined


def test_the_log_holds_no_patient_data_and_no_forged_line(settings, run_log, tiny_input):
    ingest(settings, tiny_input)
    text = run_log.read_text(encoding="utf-8")
    values, names = phi_values(patient_pool(TINY))
    mine, my_names = record_phi_values([PATIENT])
    assert values and names
    assert leaks([text], values | mine, names | my_names) == []
    assert "forged" not in text and "CRITICAL" not in text
    assert "ORD-LOG-1" not in text  # payload values never: not even a business id
