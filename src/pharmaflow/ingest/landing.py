"""One batch after the ingest steps: its protected tables and its counts, ready for sinks.

A `Landing` is what the steps (decode → validate → dedupe → protect PHI) make of a raw batch
and what every sink writes from: bronze rows (the event as it may be stored), quarantine rows
(the reject sealed), the vault's rows, dead letters. It is immutable in practice: a change
(events another writer landed meanwhile become duplicates) makes a new one (`without`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.sources.base import DeadLetter


@dataclass
class Landing:
    ingest_time: datetime
    bronze: pa.Table
    quarantine: pa.Table | None
    patients: pa.Table
    name_tokens: pa.Table
    counts: BatchCounts
    first_offset: int
    last_offset: int
    landed_ids: pa.Array
    landed_hours: np.ndarray
    dedupe_gen: int
    dead_letters: list[DeadLetter] | None
    # (event_id, event_hour) other writers landed, found while committing: for the dedupe.
    elsewhere: pa.Table | None = None

    def without(self, found: pa.Table) -> Landing:
        """This batch without the events in `found` (landed by another writer): they become
        duplicates, so the batch's counts still add up to its records."""
        if not found.num_rows or not self.counts.landed:
            return self
        drop = pc.is_in(self.landed_ids, value_set=found["event_id"])
        dropped = pc.sum(drop).as_py() or 0
        if not dropped:
            return self
        keep = pc.invert(drop)
        bronze = self.bronze.filter(keep)
        patients = self.patients
        if patients.num_rows:
            patients = patients.filter(
                pc.invert(pc.is_in(patients["event_id"], value_set=found["event_id"]))
            )
        gone = self.bronze["event_type"].filter(drop).to_pylist()
        counts = replace(
            self.counts,
            landed=self.counts.landed - dropped,
            duplicates=self.counts.duplicates + dropped,
            landed_types=type(self.counts.landed_types)(bronze["event_type"].to_pylist()),
            duplicate_types=self.counts.duplicate_types + type(self.counts.duplicate_types)(gone),
        )
        return replace(
            self,
            bronze=bronze,
            patients=patients,
            counts=counts,
            landed_ids=self.landed_ids.filter(keep),
            landed_hours=self.landed_hours[np.asarray(keep.to_numpy(zero_copy_only=False))],
        )

    def replayed(self) -> Landing:
        """This batch, when another writer committed the same batch (same lines) first: every
        record of it is replayed, as when a later run meets a committed batch."""
        return replace(self, counts=self.counts.as_replayed(), dead_letters=None)
