"""Where each kind of file lives in the data dir (see docs/lake-layout.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# A file being written atomically carries this prefix until its rename (lake.files); a
# manifest with it is a commit still in progress, or left by a crash: not a commit.
TMP_PREFIX = ".tmp-"
# A data file of one batch: part-<batch_id>.parquet (bronze, quarantine, vault, event index).
PART_FILE = re.compile(r"^part-(?P<batch>.+)\.parquet$")


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
