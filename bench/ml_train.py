"""ML benchmark: every model against its baseline on the demo ML window, and training time.

One run: simulate a window long enough to learn from (default 63 days at scale 0.25, ending two
days before today so no event is in the future), ingest it from a file, build the warehouse,
then `pharmaflow train` all four tasks (a private MLflow store in the bench's temp dir) and
print, per task, every holdout metric beside its baseline's (and the ratio), the training
seconds, and whether the version was promoted. `--repeat` trains once more with the same
seed and checks that every metric is identical (reproducibility).

    python bench/ml_train.py [--data-dir DIR] [--days 63] [--scale 0.25] [--seed 7]
                             [--repeat] [--json]

With `--data-dir` (a data dir already built) nothing is simulated: the data dir's warehouse
is only read, and the MLflow store still goes to a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench_keys import KEYS

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def prepare(folder: Path, days: int, scale: float, seed: int) -> tuple[Path, dict[str, float]]:
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.config import Settings
    from pharmaflow.simulate.config import SimConfig
    from pharmaflow.simulate.simulator import simulate
    from pharmaflow.warehouse.runner import build

    data_dir = folder / "data"
    settings = Settings(data_dir=data_dir, batch_size=50_000)
    start = datetime.now(UTC).date() - timedelta(days=days + 2)
    config = SimConfig(seed=seed, days=days, scale=scale, start=start)
    times: dict[str, float] = {}
    began = time.perf_counter()
    stats = simulate(config, folder / "events.jsonl", truth_dir=settings.truth_dir)
    times["simulate"] = time.perf_counter() - began
    began = time.perf_counter()
    run_ingest(settings, str(folder / "events.jsonl"))
    times["ingest"] = time.perf_counter() - began
    began = time.perf_counter()
    result = build(settings)
    times["build"] = time.perf_counter() - began
    if not result.success:
        raise SystemExit(f"build failed: {result.failures}")
    times["events"] = float(stats.lines)
    return data_dir, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--days", type=int, default=63)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(KEYS)

    from pharmaflow.config import Settings
    from pharmaflow.ml.train import train

    console = Console()
    with tempfile.TemporaryDirectory(prefix="pharmaflow-bench-ml-") as tmp:
        folder = Path(tmp)
        times: dict[str, float] = {}
        data_dir = args.data_dir
        if data_dir is None:
            data_dir, times = prepare(folder, args.days, args.scale, args.seed)
        tracking = f"sqlite:///{folder / 'mlflow.db'}"
        settings = Settings(data_dir=data_dir, mlflow_tracking_uri=tracking)
        outcomes = train(settings, seed=args.seed)
        rows = []
        for o in outcomes:
            r = o.registered
            for key in sorted(r.metrics):
                base = r.baseline.get(key)
                rows.append(
                    {
                        "task": r.task,
                        "metric": key,
                        "model": r.metrics[key],
                        "baseline": base,
                        "ratio": None if not base else r.metrics[key] / base,
                        "train_seconds": o.seconds,
                        "promoted": r.promoted,
                    }
                )
        same = None
        if args.repeat:
            again = train(settings, seed=args.seed)
            same = all(
                a.registered.metrics == b.registered.metrics
                for a, b in zip(outcomes, again, strict=True)
            )
    if args.json:
        print(json.dumps({"prepare": times, "metrics": rows, "reproducible": same}, indent=2))
        return
    if times:
        console.print(
            f"{times['events']:,.0f} events: simulate {times['simulate']:.1f}s, ingest "
            f"{times['ingest']:.1f}s, build {times['build']:.1f}s"
        )
    table = Table(title="holdout metrics: model vs baseline (time-based split)")
    for column in ("task", "metric", "model", "baseline", "model/baseline", "train s", "champion"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    last = None
    for row in rows:
        first = row["task"] != last
        last = row["task"]
        table.add_row(
            row["task"] if first else "",
            row["metric"],
            f"{row['model']:.4f}",
            "-" if row["baseline"] is None else f"{row['baseline']:.4f}",
            "-" if row["ratio"] is None else f"{row['ratio']:.3f}",
            f"{row['train_seconds']:.1f}" if first else "",
            ("yes" if row["promoted"] else "no") if first else "",
        )
    console.print(table)
    if same is not None:
        console.print(f"same seed, same data, same metrics: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
