"""Orchestration benchmark: the marts DAG against a plain `pharmaflow build`, and DAG parse time.

One run: simulate and ingest a lake once, then per round copy it twice and build each copy
from scratch — once with `pharmaflow build` (the baseline), once as the `pharma_marts_daily`
DAG under `dag.test()` (one build task plus a task per dbt node) — in alternating order, each
in a fresh process, and print both wall times and their ratio (target: at most 1.5). Then the
DagBag's parse time per DAG file (target: under 1 s each).

    python bench/orchestrate_marts.py [--days 7] [--scale 0.3] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench_keys import KEYS

DAG_RUN = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
if sys.argv[2] == "parse":
    print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()},
                      "files": {s.file.rsplit("/", 1)[-1]: s.duration.total_seconds()
                                for s in bag.dagbag_stats}}))
else:
    run = bag.dags["pharma_marts_daily"].test()
    print(json.dumps({"state": str(run.state),
                      "tasks": len(run.get_task_instances())}))
"""


def _env(home: Path, data_dir: Path, dags: Path) -> dict[str, str]:
    return {
        **os.environ,
        **KEYS,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PHARMAFLOW_DATA_DIR": str(data_dir),
    }


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{out.stderr[-3000:]}")
    return seconds, out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import pharmaflow.orchestrate.dags as dags_package
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.config import Settings
    from pharmaflow.simulate.config import SimConfig
    from pharmaflow.simulate.simulator import simulate

    dags = Path(dags_package.__file__).parent
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="pharmaflow-bench-orch-") as tmp:
        root = Path(tmp)
        os.environ.update(KEYS)
        lake = root / "lake-only"
        stats = simulate(SimConfig(days=args.days, scale=args.scale), root / "events.jsonl")
        run_ingest(Settings(data_dir=lake), str(root / "events.jsonl"))
        home = root / "airflow"
        home.mkdir()
        base_env = _env(home, lake, dags)
        subprocess.run(
            [str(bin_dir / "airflow"), "db", "migrate"],
            env=base_env,
            check=True,
            capture_output=True,
        )
        plain: list[float] = []
        dag: list[float] = []
        for i in range(args.rounds):
            order = ["plain", "dag"] if i % 2 == 0 else ["dag", "plain"]
            for kind in order:
                copy = root / f"{kind}-{i}"
                shutil.copytree(lake, copy, symlinks=True)
                env = _env(home, copy, dags)
                if kind == "plain":
                    seconds, _ = _timed(
                        [str(bin_dir / "pharmaflow"), "--data-dir", str(copy), "build", "--json"],
                        env,
                    )
                    plain.append(seconds)
                else:
                    seconds, line = _timed([sys.executable, "-c", DAG_RUN, str(dags), "run"], env)
                    if json.loads(line)["state"] != "success":
                        raise SystemExit(f"the marts DAG did not succeed: {line}")
                    dag.append(seconds)
                shutil.rmtree(copy)
        _s, parse_line = _timed([sys.executable, "-c", DAG_RUN, str(dags), "parse"], base_env)
        parsed = json.loads(parse_line)

    best_plain, best_dag = min(plain), min(dag)
    result = {
        "events": stats.lines,
        "rounds": args.rounds,
        "plain_build_s": [round(x, 2) for x in plain],
        "marts_dag_s": [round(x, 2) for x in dag],
        "ratio_best": round(best_dag / best_plain, 3),
        "ratio_per_round": [round(d / p, 3) for p, d in zip(plain, dag, strict=True)],
        "parse_s": {k: round(v, 4) for k, v in parsed["files"].items()},
        "import_errors": parsed["errors"],
    }
    if args.json:
        print(json.dumps(result))
        return
    console = Console()
    table = Table(title=f"marts DAG vs plain build ({stats.lines:,} events, full builds)")
    for col in ("round", "pharmaflow build s", "pharma_marts_daily s", "ratio"):
        table.add_column(col, justify="right")
    for i, (p, d) in enumerate(zip(plain, dag, strict=True)):
        table.add_row(str(i + 1), f"{p:.1f}", f"{d:.1f}", f"{d / p:.2f}")
    table.add_row("best", f"{best_plain:.1f}", f"{best_dag:.1f}", f"{best_dag / best_plain:.2f}")
    console.print(table)
    parse = Table(title="DagBag parse time per file (target < 1 s)")
    parse.add_column("file")
    parse.add_column("seconds", justify="right")
    for name, seconds in sorted(result["parse_s"].items()):
        parse.add_row(name, f"{seconds:.4f}")
    console.print(parse)
    if parsed["errors"]:
        console.print(f"[red]import errors:[/red] {parsed['errors']}")


if __name__ == "__main__":
    main()
