"""Model cards: one markdown page per registered version, for reviewers who never open MLflow.

The card says what the model was trained on (snapshot, windows, rows, features), how it did
against its baseline and the champion it was compared with, whether it was promoted and why,
and its known limits. It is written to `<data dir>/ml/cards/`, logged with the run and stored
as the registered version's description.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pharmaflow.ml.spec import Trained

if TYPE_CHECKING:
    from pharmaflow.ml.registry import Registered


def render_card(trained: Trained, registered: Registered, snapshot_id: str) -> str:
    """The card's markdown (deterministic apart from the time it was written)."""
    champion = registered.champion_before
    header = "| metric | model | baseline |"
    rule = "|---|---:|---:|"
    if registered.champion_metrics is not None:
        header += f" champion v{champion} |"
        rule += "---:|"
    rows = []
    for key in sorted(trained.metrics):
        base = trained.baseline.get(key)
        line = f"| {key}{' (primary)' if key == trained.primary else ''} | "
        line += f"{_num(trained.metrics[key])} | {_num(base)} |"
        if registered.champion_metrics is not None:
            line += f" {_num(registered.champion_metrics.get(key))} |"
        rows.append(line)
    direction = "higher" if trained.higher_is_better else "lower"
    lines = [
        f"# {registered.model_name} v{registered.version}",
        "",
        f"- task: `{trained.task}`",
        f"- written: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; MLflow run `{registered.run_id}`",
        f"- data: warehouse snapshot `{snapshot_id}`",
        f"- training window: {trained.train_window[0]} .. {trained.train_window[1]}"
        f" ({trained.rows.get('train', 0):,} rows)",
        f"- holdout window (time-based): {trained.holdout_window[0]} .. "
        f"{trained.holdout_window[1]} ({trained.rows.get('holdout', 0):,} rows)",
        f"- baseline: {trained.baseline_name}",
        f"- promoted to `champion`: {'yes' if registered.promoted else 'no'} — {registered.reason}",
        "",
        "## Features",
        "",
        ", ".join(f"`{f}`" for f in trained.features) or "(none)",
        "",
        "## Holdout metrics",
        "",
        f"Primary metric: `{trained.primary}` ({direction} is better).",
        "",
        header,
        rule,
        *rows,
        "",
        "## Parameters",
        "",
        *[f"- `{k}`: {v}" for k, v in sorted(trained.params.items())],
        "",
        "## Known limits",
        "",
        *([f"- {limit}" for limit in trained.limits] or ["- none recorded"]),
        "",
    ]
    return "\n".join(lines)


def write_card(path: Path, trained: Trained, registered: Registered, snapshot_id: str) -> Path:
    """Write the card atomically (a temporary file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_card(trained, registered, snapshot_id))
    os.replace(tmp, path)
    return path


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.0f}"
