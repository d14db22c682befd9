"""The lake's sinks: bronze (with the event index that dedupe reads), quarantine, the vault.

Each writes Parquet parts named for the batch, atomically (temp file, fsync, rename). Parts are
invisible to readers until the batch's manifest exists, and a crash's parts are removed by the
commit log's recovery, so writing twice (a rewrite, a retry after a crash) never doubles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pharmaflow.ingest.phi.vault import PhiVault
from pharmaflow.lake.bronze import write_bronze
from pharmaflow.lake.event_index import EventIndex
from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout

if TYPE_CHECKING:
    from pharmaflow.ingest.landing import Landing
    from pharmaflow.ingest.sources.base import RawBatch


class BronzeSink:
    """Landed events, partitioned by type and ingest date, and their ids for dedupe."""

    name = "bronze"

    def __init__(self, layout: LakeLayout, event_index: EventIndex) -> None:
        self.layout = layout
        self.event_index = event_index

    def write(self, batch: RawBatch, landing: Landing) -> list[Path]:
        files = write_bronze(self.layout, landing.bronze, landing.ingest_time, batch.batch_id)
        files += self.event_index.write(batch.batch_id, landing.landed_ids, landing.landed_hours)
        return files

    def flush(self) -> None:
        """Parts are fsynced as they are written."""

    def close(self) -> None:
        """Nothing held between batches."""


class QuarantineSink:
    """Rejected records with their reasons, each record sealed with the vault key."""

    name = "quarantine"

    def __init__(self, layout: LakeLayout) -> None:
        self.layout = layout

    def write(self, batch: RawBatch, landing: Landing) -> list[Path]:
        if landing.quarantine is None:
            return []
        path = self.layout.quarantine_part(landing.ingest_time, batch.batch_id)
        write_parquet_atomic(landing.quarantine, path)
        return [path]

    def flush(self) -> None:
        """Parts are fsynced as they are written."""

    def close(self) -> None:
        """Nothing held between batches."""


class VaultSink:
    """The vault's sealed patient records and the name tokens free-text scrubbing learns."""

    name = "vault"

    def __init__(self, vault: PhiVault) -> None:
        self.vault = vault

    def write(self, batch: RawBatch, landing: Landing) -> list[Path]:
        files = []
        for table, directory in (
            (landing.patients, self.vault.patients_dir),
            (landing.name_tokens, self.vault.name_tokens_dir),
        ):
            if table.num_rows:
                path = directory / f"part-{batch.batch_id}.parquet"
                write_parquet_atomic(table, path)
                files.append(path)
        return files

    def flush(self) -> None:
        """Parts are fsynced as they are written."""

    def close(self) -> None:
        """Nothing held between batches."""
