"""Warehouse build benchmark: an incremental build against a full refresh, in one run.

For each scale the simulated week (all fault knobs on) is split in arrival order: everything
but the last `--tail` share is ingested and built, then the tail (one hour of a week is
1/168) is ingested and built incrementally, then the same lake is rebuilt with a full refresh.
The figures that matter are the ratios incremental / full on the same lake (machine noise
cancels out of them), for the whole build and for the models alone (dbt's summed execution
time: a build also runs every data test and pays dbt's start, which do not shrink with the
data); the row counts of both builds must agree.

    python bench/build_warehouse.py [--scales 1,10] [--tail 0.006] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench_keys import KEYS
from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from pharmaflow.warehouse.runner import build


def ingest(settings: Settings, path: Path) -> None:
    engine = IngestEngine(settings)
    engine.run(open_sources(str(path), engine.registry))


def run_scale(scale: float, tail: float, work: Path) -> dict[str, float | int | bool]:
    source = work / f"events-{scale}.jsonl"
    stats = simulate(SimConfig(seed=42, days=7, scale=scale), source)
    lines = source.read_bytes().splitlines(keepends=True)
    cut = int(len(lines) * (1 - tail))
    head, rest = work / f"head-{scale}.jsonl", work / f"tail-{scale}.jsonl"
    head.write_bytes(b"".join(lines[:cut]))
    rest.write_bytes(b"".join(lines[cut:]))
    del lines

    settings = Settings(data_dir=work / f"data-{scale}")
    ingest(settings, head)
    first = build(settings)
    ingest(settings, rest)
    started = time.perf_counter()
    incremental = build(settings)
    incremental_s = time.perf_counter() - started
    started = time.perf_counter()
    full = build(settings, full_refresh=True)
    full_s = time.perf_counter() - started
    return {
        "events": stats.lines,
        "tail_events": len(rest.read_bytes().splitlines()),
        "first_build_s": round(first.seconds, 1),
        "incremental_s": round(incremental_s, 1),
        "full_refresh_s": round(full_s, 1),
        "ratio": round(incremental_s / full_s, 2),
        "incremental_models_s": round(incremental.node_seconds.get("model", 0.0), 1),
        "full_models_s": round(full.node_seconds.get("model", 0.0), 1),
        "models_ratio": round(
            incremental.node_seconds.get("model", 0.0)
            / max(full.node_seconds.get("model", 0.0), 1e-9),
            2,
        ),
        "tests_s": round(full.node_seconds.get("test", 0.0), 1),
        "tables_agree": incremental.tables == full.tables,
        "all_tests_passed": all(
            r.success and r.tests_failed == 0 for r in (first, incremental, full)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="simulator scales (1 = the demo)")
    parser.add_argument("--tail", type=float, default=1 / 168, help="share built incrementally")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(KEYS)
    results = {}
    with tempfile.TemporaryDirectory(prefix="pf-build-bench-") as tmp:
        for scale in (float(s) for s in args.scales.split(",")):
            results[scale] = run_scale(scale, args.tail, Path(tmp))
            if not args.json:
                r = results[scale]
                print(
                    f"scale {scale:g}: {r['events']:,} events; first build {r['first_build_s']}s; "
                    f"+{r['tail_events']:,} events: incremental {r['incremental_s']}s vs "
                    f"full refresh {r['full_refresh_s']}s = {r['ratio']}x; "
                    f"model time {r['incremental_models_s']}s vs {r['full_models_s']}s = "
                    f"{r['models_ratio']}x; dbt tests {r['tests_s']}s each build "
                    f"(tables agree: {r['tables_agree']}, tests: {r['all_tests_passed']})",
                    flush=True,
                )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
