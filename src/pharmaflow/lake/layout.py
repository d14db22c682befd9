"""Where each kind of file lives in the data dir (see docs/lake-layout.md)."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# A file being written atomically carries this prefix until its rename (lake.files); a
# manifest with it is a commit still in progress, or left by a crash: not a commit.
TMP_PREFIX = ".tmp-"
# A data file of one batch: part-<batch_id>.parquet (bronze, quarantine, vault, event index).
PART_FILE = re.compile(r"^part-(?P<batch>.+)\.parquet$")
# Lock files batch claims are spread over (see `LakeLayout.claim_lock`).
CLAIM_SLOTS = 256


def part_batch_id(name: str) -> str | None:
    """The batch id in a part file's name, or None for any other file."""
    match = PART_FILE.match(name)
    return match["batch"] if match else None


@dataclass(frozen=True)
class LakeLayout:
    root: Path

    @property
    def bronze(self) -> Path:
        return self.root / "bronze"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def manifests(self) -> Path:
        return self.root / "_manifests"

    def committed_manifests(self) -> dict[str, Path]:
        """batch id -> manifest of every committed batch, sorted by batch id. A batch is
        committed once its manifest exists under its final name (docs/lake-layout.md)."""
        if not self.manifests.exists():
            return {}
        return {
            p.stem: p
            for p in sorted(self.manifests.glob("*.json"))
            if not p.name.startswith(TMP_PREFIX) and p.is_file()
        }

    @property
    def commit_lock(self) -> Path:
        """Held (flock) by a writer for the check and write of one manifest (`commits`)."""
        return self.root / "_commit.lock"

    @property
    def commit_journal(self) -> Path:
        """Batch ids in commit order, one a line: what other writers committed since a look."""
        return self.root / "_commits.log"

    def claim_lock(self, batch_id: str) -> Path:
        """Held while a writer writes and commits `batch_id`: two file ingests of one file make
        the same (content-named) batch, and only one of them may write its parts. Ids share
        a fixed set of lock files, so the lake does not gain one file per batch."""
        return self.root / "_claims" / f"{zlib.crc32(batch_id.encode()) % CLAIM_SLOTS:03d}.lock"

    def claim_note(self, batch_id: str) -> Path:
        """Written by the writer holding a file batch's claim before its parts, removed once
        the batch is committed: the ingest time it writes under, so that if it dies a later
        writer of the same batch finds its parts (bronze and quarantine sit under that hour)."""
        return self.root / "_claims" / f"{batch_id}.writing"

    def hour_dir(self, ingest_time: datetime) -> Path:
        """`date=YYYY-MM-DD/hour=HH`: the folder a batch's bronze and quarantine parts sit in."""
        return _date_hour(ingest_time)

    @property
    def event_ids(self) -> Path:
        """The persistent dedupe index: landed event ids by event date (see `event_index`)."""
        return self.root / "_event_ids"

    def event_ids_part(self, event_date: str, batch_id: str) -> Path:
        return self.event_ids / f"date={event_date}" / f"part-{batch_id}.parquet"

    def bronze_part(self, event_type: str, ingest_time: datetime, batch_id: str) -> Path:
        return (
            self.bronze
            / f"event_type={event_type}"
            / _date_hour(ingest_time)
            / f"part-{batch_id}.parquet"
        )

    def quarantine_part(self, ingest_time: datetime, batch_id: str) -> Path:
        return self.quarantine / _date_hour(ingest_time) / f"part-{batch_id}.parquet"

    def manifest(self, batch_id: str) -> Path:
        return self.manifests / f"{batch_id}.json"


def _date_hour(ts: datetime) -> Path:
    return Path(f"date={ts:%Y-%m-%d}") / f"hour={ts:%H}"
