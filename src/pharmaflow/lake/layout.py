"""Where each kind of file lives in the data dir (see docs/lake-layout.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


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
