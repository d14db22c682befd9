"""What happened to a batch's records: one type for a batch, a run, a manifest and the metrics.

Every record read ends in exactly one bucket — landed, duplicate, quarantined — or was
recognised as committed before and skipped (replayed). So `records == landed + duplicates +
quarantined + replayed` holds for a batch, for a worker's run and for a group of workers
added up, and it is checked. Blank lines are not records (files only) and are counted aside.

The same counts are written into each batch's manifest (`MANIFEST_FIELDS`), read back when a
later run meets a committed batch, summed by `pharmaflow` reports over the lake, and turned
into Prometheus counters; keeping them in one type keeps those places from drifting apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

# What a manifest's "counts" holds (reasons are stored beside it, as "quarantine_reasons").
MANIFEST_FIELDS = ("records", "landed", "duplicates", "quarantined", "blank", "undeclared_stripped")


@dataclass
class BatchCounts:
    records: int = 0
    blank: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    replayed: int = 0
    # valid events that carried fields their contract does not declare (removed)
    undeclared_stripped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    landed_types: Counter[str] = field(default_factory=Counter)
    duplicate_types: Counter[str] = field(default_factory=Counter)
    # (envelope event type or "unknown", reason code)
    quarantined_types: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def conserved(self) -> bool:
        return self.records == self.landed + self.duplicates + self.quarantined + self.replayed

    def add(self, other: BatchCounts) -> None:
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))

    def as_replayed(self) -> BatchCounts:
        """These records, all met again after a commit: nothing landed, everything replayed."""
        return BatchCounts(records=self.records, blank=self.blank, replayed=self.records)

    def manifest(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in MANIFEST_FIELDS}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> BatchCounts:
        """A committed batch's counts, as its manifest recorded them."""
        counts = manifest.get("counts", {})
        return cls(
            **{name: int(counts.get(name, 0)) for name in MANIFEST_FIELDS},
            reasons=Counter(manifest.get("quarantine_reasons", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """The public figures (CLI `--json`, worker results): per-type splits are metrics."""
        return {
            **{name: getattr(self, name) for name in (*MANIFEST_FIELDS, "replayed")},
            "quarantine_reasons": dict(sorted(self.reasons.items())),
            "landed_by_type": dict(sorted(self.landed_types.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchCounts:
        return cls(
            **{name: int(data.get(name, 0)) for name in (*MANIFEST_FIELDS, "replayed")},
            reasons=Counter(data.get("quarantine_reasons", {})),
            landed_types=Counter(data.get("landed_by_type", {})),
        )
