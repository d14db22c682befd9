"""Batch commits: a batch exists once its manifest exists, and only then.

A batch writes several files (one bronze part per event type, a quarantine part, vault parts).
They become a unit through the manifest, written atomically after all of them. A crash before
the manifest leaves files whose batch has no manifest; `recover` deletes them before the next
run, and the source replays that batch, so nothing is lost and nothing is doubled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.lake.files import TMP_PREFIX, write_bytes_atomic
from pharmaflow.lake.layout import LakeLayout

_PART = re.compile(r"^part-(?P<batch>.+)\.parquet$")


class CommitLog:
    def __init__(self, layout: LakeLayout, data_dirs: Iterable[Path]) -> None:
        self.layout = layout
        self.data_dirs = [layout.bronze, layout.quarantine, *data_dirs]
        self._committed = {p.stem for p in layout.manifests.glob("*.json")}

    def is_committed(self, batch_id: str) -> bool:
        return batch_id in self._committed

    def commit(self, batch_id: str, manifest: dict[str, Any]) -> None:
        manifest = {**manifest, "batch_id": batch_id, "committed_at": datetime.now(UTC).isoformat()}
        write_bytes_atomic(
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2), self.layout.manifest(batch_id)
        )
        self._committed.add(batch_id)

    def manifest(self, batch_id: str) -> dict[str, Any]:
        return orjson.loads(self.layout.manifest(batch_id).read_bytes())

    def recover(self) -> list[Path]:
        """Delete temporary files and parts of uncommitted batches; return what was removed."""
        removed: list[Path] = []
        for directory in self.data_dirs:
            if not directory.exists():
                continue
            for path in directory.rglob("*"):
                if not path.is_file():
                    continue
                if path.name.startswith(TMP_PREFIX):
                    path.unlink()
                    removed.append(path)
                    continue
                match = _PART.match(path.name)
                if match and match["batch"] not in self._committed:
                    path.unlink()
                    removed.append(path)
        return removed
