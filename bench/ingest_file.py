"""File-ingest benchmark: the pharmaflow engine against a plain per-record baseline.

Both read the same simulated JSONL file (all fault knobs on) in the same run and write Parquet;
the figures that matter are the ratio and the counts (which must agree), not absolute times.

The baseline is what a careful engineer writes first: `json.loads` per line, a dict walk
validating every field against the same contracts, a Python `set` for dedupe, rows collected
per event type, one Parquet file per type. The engine additionally tokenises and seals PHI,
scrubs free text and encrypts quarantined records, so the comparison favours the baseline.

    python bench/ingest_file.py [--events 500000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pharmaflow.config import Settings
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from plain_checks import check_event

# --------------------------------------------------------------------------- input


def make_input(path: Path, events: int) -> None:
    """Simulate enough days for `events` lines, keep exactly the first `events`."""
    raw = path.with_suffix(".full.jsonl")
    scale = 1.0
    while True:
        stats = simulate(SimConfig(seed=7, days=7, scale=scale), raw)
        if stats.lines >= events:
            break
        scale *= events / stats.lines * 1.05
    with open(raw, "rb") as src, open(path, "wb") as dst:
        for i, line in enumerate(src):
            if i == events:
                break
            dst.write(line)
    raw.unlink()


# --------------------------------------------------------------------------- baseline


def baseline(path: Path, out: Path, registry: ContractRegistry) -> dict[str, int]:
    seen: set[str] = set()
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    quarantine: list[dict[str, Any]] = []
    counts = {"input": 0, "landed": 0, "duplicates": 0, "quarantined": 0}
    envelope = registry.envelope
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            counts["input"] += 1
            try:
                doc = json.loads(line)
                reason = None if isinstance(doc, dict) else "not_an_object"
            except ValueError:
                doc, reason = None, "malformed_json"
            if reason is None:
                reason = check_event(doc, registry)
            if reason is not None:
                quarantine.append({"line": line_no, "reason": reason, "raw": line})
                counts["quarantined"] += 1
                continue
            if doc["event_id"] in seen:
                counts["duplicates"] += 1
                continue
            seen.add(doc["event_id"])
            record = {spec.name: doc.get(spec.name) for spec in envelope}
            record["payload"] = json.dumps(doc["payload"])
            record["line"] = line_no
            rows[doc["event_type"]].append(record)
            counts["landed"] += 1
    out.mkdir(parents=True, exist_ok=True)
    for event_type, records in rows.items():
        pq.write_table(pa.Table.from_pylist(records), out / f"{event_type}.parquet")
    if quarantine:
        pq.write_table(pa.Table.from_pylist(quarantine), out / "quarantine.parquet")
    return counts


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs each")
    parser.add_argument("--json", action="store_true", help="print figures as JSON last line")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pharmaflow-bench-"))
    try:
        events_file = work / "events.jsonl"
        make_input(events_file, args.events)
        registry = default_registry()
        base_s, engine_s = float("inf"), float("inf")
        for i in range(args.repeat):
            started = time.perf_counter()
            base_counts = baseline(events_file, work / f"baseline-{i}", registry)
            base_s = min(base_s, time.perf_counter() - started)

            engine = IngestEngine(Settings(data_dir=work / f"engine-{i}"), registry)
            started = time.perf_counter()
            result = engine.run(open_sources(str(events_file), registry))
            engine_s = min(engine_s, time.perf_counter() - started)
        engine_counts = {k: getattr(result, k) for k in base_counts}
        if engine_counts != base_counts:
            print(f"counts differ: engine {engine_counts} baseline {base_counts}", file=sys.stderr)
            sys.exit(1)
        figures = {
            "events": args.events,
            "baseline_events_per_s": round(args.events / base_s),
            "engine_events_per_s": round(args.events / engine_s),
            "ratio": round(base_s / engine_s, 2),
            "counts": engine_counts,
        }
        print(f"{'':<10}{'seconds':>10}{'events/s':>12}")
        print(f"{'baseline':<10}{base_s:>10.2f}{figures['baseline_events_per_s']:>12,}")
        print(f"{'engine':<10}{engine_s:>10.2f}{figures['engine_events_per_s']:>12,}")
        print(f"ratio engine/baseline: {figures['ratio']}x  (counts agree: {engine_counts})")
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
