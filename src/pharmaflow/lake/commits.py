"""Batch commits: a batch exists once its manifest exists, and only then.

A batch writes several files (one bronze part per event type, a quarantine part, vault parts,
dedupe index parts). They become a unit through the manifest, written atomically after all of
them. A crash before the manifest leaves files whose batch has no manifest; `recover` deletes
them before the next run, and the source replays that batch, so nothing is lost and nothing
is doubled. Several writers may share a lake: recovery only touches files of writers that are
no longer running (see `writers`).

Several writers may also land the same events at once (a file ingest beside a Kafka ingest,
two file ingests of overlapping files). Each writer's in-memory dedupe cannot see the others'
batches in flight, so the check that matters happens under the lake's commit lock
(`<lake>/_commit.lock`, an exclusive `flock` the kernel drops when a process dies): the writer
reads what others committed since it last looked (the commit journal `<lake>/_commits.log`,
one batch id a line), drops events they landed, and only then writes its manifest. A file batch
is content-named, so two writers of one file make the same batch; a per-batch claim
(`claim`) lets only one of them write its parts.

Manifests of stream batches also record the offsets they hold per topic partition. Those
offsets are the stream's exactly-once bookmark: a record at or below the landed offset of its
partition was landed by some earlier batch, whatever the broker's committed offset says.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.lake.files import write_bytes_atomic
from pharmaflow.lake.layout import PART_FILE, TMP_PREFIX, LakeLayout
from pharmaflow.lake.writers import FILE_WRITER, is_live, writer_of
from pharmaflow.locks import locked

_MANIFEST = re.compile(r"^(?P<batch>.+)\.json$")
_TMP = re.compile(rf"^{re.escape(TMP_PREFIX)}\d+-(?P<name>.+)$")

# (topic, topic id, partition): a partition of one incarnation of a topic. A topic deleted and
# created again restarts its offsets at 0 under a new id, so old bookmarks must not apply.
PartitionKey = tuple[str, str, int]


class CommitLog:
    def __init__(self, layout: LakeLayout, data_dirs: Iterable[Path]) -> None:
        self.layout = layout
        extra = list(data_dirs)
        self.data_dirs = [layout.bronze, layout.quarantine, layout.manifests, *extra]
        # Folders that hold a batch's part directly, not under a date (the vault's).
        self._flat_dirs = [d for d in extra if d != layout.event_ids]
        self._committed: set[str] = set()
        self._offsets: dict[PartitionKey, int] = {}
        self._unread: list[str] = []  # committed by others; offsets not read yet
        self._mine: set[str] = set()  # committed by this log
        # The writer thread commits while a stream source may refresh from the main thread.
        self._mutex = threading.RLock()
        self._lock_depth = 0
        self.refresh()

    def refresh(self) -> None:
        """Take in manifests committed since the last look (other writers share the lake).
        Their offsets are read only when asked for: a file ingest never needs them."""
        # A manifest still being written (or left by a crash before its rename) is a `.tmp-`
        # file: its batch is not committed, and its offsets are no bookmark.
        with self._mutex:
            for batch_id in self.layout.committed_manifests():
                if batch_id not in self._committed:
                    self._committed.add(batch_id)
                    self._unread.append(batch_id)

    def note(self, batch_id: str) -> None:
        """Take in one batch found committed (by another writer) without a full refresh."""
        with self._mutex:
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
        with self._mutex:
            for batch_id in self._unread:
                offsets = self.manifest(batch_id).get("offsets")
                if offsets:
                    self._note_offsets(offsets)
            self._unread.clear()
            return dict(self._offsets)

    def is_committed(self, batch_id: str) -> bool:
        return batch_id in self._committed

    def is_mine(self, batch_id: str) -> bool:
        """Committed by this log (this writer), rather than found in the lake."""
        return batch_id in self._mine

    def has_manifest(self, batch_id: str) -> bool:
        """Committed by anyone, as of now (one stat; `is_committed` is as of the last look)."""
        return self.layout.manifest(batch_id).is_file()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The lake's commit lock: one writer at a time checks against the others' commits
        and writes its manifest. Re-entrant within this log (its writer thread)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with locked(self.layout.commit_lock):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    @contextmanager
    def claim(self, batch_id: str) -> Iterator[None]:
        """Hold `batch_id` while writing and committing it (see `LakeLayout.claim_lock`). Only
        one claim at a time per log: two claims whose ids share a slot would wait on each
        other."""
        with locked(self.layout.claim_lock(batch_id)):
            yield

    def begin(self, batch_id: str, ingest_time: datetime) -> list[Path]:
        """Under `batch_id`'s claim, before its parts are written: remove the parts an earlier
        writer of this same (content-named) batch left when it died, then note where this one
        writes. Only file batches need it: two file ingests make the same batch, and a dead
        one's parts may sit under another ingest hour than the survivor's, where recovery (which
        leaves a shared writer's debris alone while any of them runs) would not meet them; a
        batch committed with them would be read twice."""
        note = self.layout.claim_note(batch_id)
        removed: list[Path] = []
        if note.exists():
            try:
                earlier = datetime.fromisoformat(note.read_text().strip())
            except ValueError:  # torn note: the parts it guarded were not begun
                earlier = None
            if earlier is not None:
                removed = self._abandoned_parts(batch_id, earlier)
                for path in removed:
                    path.unlink(missing_ok=True)
        write_bytes_atomic(ingest_time.isoformat().encode(), note)
        return removed

    def end(self, batch_id: str) -> None:
        """The batch is committed (or was, by another writer): its claim note has done its job."""
        self.layout.claim_note(batch_id).unlink(missing_ok=True)

    def _abandoned_parts(self, batch_id: str, ingest_time: datetime) -> list[Path]:
        hour = self.layout.hour_dir(ingest_time)
        names = (f"part-{batch_id}.parquet", f"{TMP_PREFIX}*-part-{batch_id}.parquet")
        where = [
            *self.layout.bronze.glob(f"event_type=*/{hour}"),
            self.layout.quarantine / hour,
            *self.layout.event_ids.glob("date=*"),
            *self._flat_dirs,
        ]
        return sorted({p for d in where for name in names for p in d.glob(name) if p.is_file()})

    def journal_offset(self) -> int:
        """Where the commit journal ends now: commits after this are news."""
        try:
            return self.layout.commit_journal.stat().st_size
        except FileNotFoundError:
            return 0

    def journal_since(self, offset: int) -> tuple[list[str], int]:
        """Batch ids journaled from `offset` on (whole lines only), and the offset after them.
        An id is journaled just before its manifest is written: one whose manifest is missing
        is a commit in progress (outside the lock) or one that died before its rename."""
        try:
            with open(self.layout.commit_journal, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        lines = data[:end].decode().splitlines()
        return lines, offset + end

    def commit(self, batch_id: str, manifest: dict[str, Any]) -> None:
        """Journal the batch, then write its manifest (it is committed from then on), under
        the commit lock (taken here if the caller does not hold it)."""
        manifest = {**manifest, "batch_id": batch_id, "committed_at": datetime.now(UTC).isoformat()}
        with self.lock():
            with self._mutex:
                self._mine.add(batch_id)
            fd = os.open(self.layout.commit_journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, f"{batch_id}\n".encode())
            finally:
                os.close(fd)
            write_bytes_atomic(
                orjson.dumps(manifest, option=orjson.OPT_INDENT_2), self.layout.manifest(batch_id)
            )
        with self._mutex:
            self._committed.add(batch_id)
            if manifest.get("offsets"):
                self._note_offsets(manifest["offsets"])

    def manifest(self, batch_id: str) -> dict[str, Any]:
        return orjson.loads(self.layout.manifest(batch_id).read_bytes())

    def recover(self, writer: str = FILE_WRITER, alone: bool = True) -> list[Path]:
        """Delete temporary files and parts of uncommitted batches written by `writer` (this
        run, which holds its lock) or by writers no longer running; return what was removed.
        `alone` False: other runs share `writer` (file ingests, `SharedWriterLock`), so its
        uncommitted parts may be theirs, in progress, and stay.

        A committed batch's parts are never removed. (Two writers of one content-named batch
        never write its parts at once: see `claim`.)"""
        self.refresh()
        removed: list[Path] = []
        verdicts: dict[str, bool] = {writer: True} if alone else {}

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
        if dead(FILE_WRITER):  # no file ingest runs: no claim note guards work in progress
            for note in self.layout.claim_note("*").parent.glob("*.writing"):
                note.unlink(missing_ok=True)
        return removed
