"""Ground truth: what the simulator knows about the world and the events never carry.

The models the platform trains (docs/ml.md) are judged against the truth that generated the
data: each shipment's true chance of arriving late, the demand the sales were drawn from,
each product's price elasticity, the sentiment a comment was written with. That truth is kept
beside the data, never inside the events (a model trained on the lake cannot see it), as one
Parquet table per name in a `truth/` folder (`<data dir>/truth` by default).

Each domain adds rows in blocks (`add`), as it draws them; the tables are a pure function of
the simulation settings, so the same seed writes the same truth.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# The tables, and who writes them (docs/ml.md lists their columns).
SHIPMENT_DELAY = "shipment_delay"  # per shipment: true late probability and its drivers
DEMAND = "demand"  # per (sale_date, pharmacy_id, ndc): expected units and the price asked
ELASTICITY = "elasticity"  # per ndc: the true price elasticity and promotion uplift
SURVEY_SENTIMENT = "survey_sentiment"  # per survey_id: the sentiment its comment was written in
MANIFEST = "truth.json"


class Truth:
    """Collects ground-truth rows by table name; `table(name)` gives them as Arrow."""

    def __init__(self) -> None:
        self._blocks: dict[str, list[dict[str, Any]]] = {}

    def add(self, name: str, **columns: Sequence[Any] | np.ndarray) -> None:
        """Append a block of rows to table `name`: equal-length columns, by column name. Every
        block of one table must have the same columns."""
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"truth table {name}: columns of unequal length {sorted(lengths)}")
        blocks = self._blocks.setdefault(name, [])
        if blocks and set(blocks[0]) != set(columns):
            raise ValueError(
                f"truth table {name}: columns {sorted(columns)} differ from {sorted(blocks[0])}"
            )
        blocks.append(dict(columns))

    def names(self) -> list[str]:
        return sorted(self._blocks)

    def table(self, name: str) -> pa.Table:
        """All rows of `name`, in the order they were added (an empty table if none)."""
        blocks = self._blocks.get(name, [])
        if not blocks:
            return pa.table({})
        return pa.concat_tables(
            [
                pa.table(
                    {
                        k: np.asarray(v) if isinstance(v, np.ndarray) else list(v)
                        for k, v in block.items()
                    }
                )
                for block in blocks
            ]
        ).combine_chunks()

    def write(self, folder: Path, settings: dict[str, Any] | None = None) -> list[Path]:
        """Write every table to `folder/<name>.parquet` (each atomically: a temporary file
        renamed over the old one), and `truth.json` naming the tables and the settings that
        produced them. Returns the paths written."""
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        counts: dict[str, int] = {}
        for name in self.names():
            table = self.table(name)
            path = folder / f"{name}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            written.append(path)
            counts[name] = table.num_rows
        manifest = folder / MANIFEST
        tmp = manifest.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps({"tables": counts, "settings": settings or {}}, indent=2, default=str) + "\n"
        )
        os.replace(tmp, manifest)
        return [*written, manifest]


def read_truth(folder: Path, name: str) -> pa.Table | None:
    """Table `name` from a truth folder, or None when the folder does not have it (data that
    did not come from the simulator has no truth)."""
    path = Path(folder) / f"{name}.parquet"
    return pq.read_table(path) if path.is_file() else None
