"""Batch commits: a batch exists once its manifest exists, and only then.

A batch writes several files (one bronze part per event type, a quarantine part, vault parts,
dedupe index parts). They become a unit through the manifest, written atomically after all of
them. A crash before the manifest leaves files whose batch has no manifest; `recover` deletes
them before the next run, and the source replays that batch, so nothing is lost and nothing
is doubled. Several writers may share a lake: recovery only touches files of writers that are
no longer running (see `writers`).

Manifests of stream batches also record the offsets they hold per topic partition. Those
offsets are the stream's exactly-once bookmark: a record at or below the landed offset of its
partition was landed by some earlier batch, whatever the broker's committed offset says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.lake.files import write_bytes_atomic
from pharmaflow.lake.layout import PART_FILE, TMP_PREFIX, LakeLayout
from pharmaflow.lake.writers import FILE_WRITER, is_live, writer_of

_MANIFEST = re.compile(r"^(?P<batch>.+)\.json$")
_TMP = re.compile(rf"^{re.escape(TMP_PREFIX)}\d+-(?P<name>.+)$")

# (topic, topic id, partition): a partition of one incarnation of a topic. A topic deleted and
# created again restarts its offsets at 0 under a new id, so old bookmarks must not apply.
PartitionKey = tuple[str, str, int]


class CommitLog:
    def __init__(self, layout: LakeLayout, data_dirs: Iterable[Path]) -> None:
        self.layout = layout
        self.data_dirs = [layout.bronze, layout.quarantine, layout.manifests, *data_dirs]
        self._committed: set[str] = set()
        self._offsets: dict[PartitionKey, int] = {}
        self._unread: list[str] = []  # committed by others; offsets not read yet
        self.refresh()

    def refresh(self) -> None:
        """Take in manifests committed since the last look (other writers share the lake).
        Their offsets are read only when asked for: a file ingest never needs them."""
        # A manifest still being written (or left by a crash before its rename) is a `.tmp-`
        # file: its batch is not committed, and its offsets are no bookmark.
        for batch_id in self.layout.committed_manifests():
            if batch_id not in self._committed:
                self._committed.add(batch_id)
                self._unread.append(batch_id)

    def _note_offsets(self, ranges: list[list[Any]]) -> None:
        for topic, topic_id, partition, _first, last in ranges:
            key = (topic, topic_id, int(partition))
            if last > self._offsets.get(key, -1):
                self._offsets[key] = int(last)

    def landed_offsets(self) -> dict[PartitionKey, int]:
        """The highest landed offset of every partition a committed batch holds."""
        for batch_id in self._unread:
            offsets = self.manifest(batch_id).get("offsets")
            if offsets:
                self._note_offsets(offsets)
        self._unread.clear()
        return dict(self._offsets)

    def is_committed(self, batch_id: str) -> bool:
        return batch_id in self._committed

    def commit(self, batch_id: str, manifest: dict[str, Any]) -> None:
        manifest = {**manifest, "batch_id": batch_id, "committed_at": datetime.now(UTC).isoformat()}
        write_bytes_atomic(
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2), self.layout.manifest(batch_id)
        )
        self._committed.add(batch_id)
        if manifest.get("offsets"):
            self._note_offsets(manifest["offsets"])

    def manifest(self, batch_id: str) -> dict[str, Any]:
        return orjson.loads(self.layout.manifest(batch_id).read_bytes())

    def recover(self, writer: str = FILE_WRITER) -> list[Path]:
        """Delete temporary files and parts of uncommitted batches written by `writer` (this
        run, which holds its lock) or by writers no longer running; return what was removed."""
        self.refresh()
        removed: list[Path] = []
        verdicts: dict[str, bool] = {writer: True}

        def dead(owner: str) -> bool:
            if owner not in verdicts:
                verdicts[owner] = not is_live(self.layout.root, owner)
            return verdicts[owner]

        for directory in self.data_dirs:
            if not directory.exists():
                continue
            for path in directory.rglob("*"):
                if not path.is_file():
                    continue
                name = path.name
                temp = _TMP.match(name)
                if temp:
                    name = temp["name"]
                match = PART_FILE.match(name) or (temp and _MANIFEST.match(name))
                if not match:
                    continue
                batch = match["batch"]
                if (temp or batch not in self._committed) and dead(writer_of(batch)):
                    path.unlink()
                    removed.append(path)
        return removed
