"""freshness_source and dead_letter_rate: judged from the lake's commit manifests alone.

A batch exists once its manifest `_manifests/<batch_id>.json` exists (lake/commits.py), and
the manifest already says what the rules need: when the batch was ingested (`ingest_time`),
which event types it landed (its bronze files sit under `bronze/event_type=<type>/`), and how
many records it landed and quarantined (`counts`, `quarantine_reasons`). So no Parquet file is
opened, however big the lake.

Manifests never change once written, so each process keeps what it read of them (`_SUMMARIES`,
by file name): the API's /metrics runs the checks every half minute, and then reads only the
manifests committed since its last run.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.config import Settings
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.orchestrate.check import CheckResult
from pharmaflow.orchestrate.checks.judge import age, count_list, judged, unknown, utc, when

_BRONZE_TYPE = re.compile(r"(?:^|/)bronze/event_type=([^/]+)/")


@dataclass(frozen=True)
class BatchSummary:
    """What the rules need of one committed batch (from its manifest)."""

    ingest_time: datetime
    event_types: frozenset[str]
    landed: int
    quarantined: int
    reasons: tuple[tuple[str, int], ...]


def summarise(manifest: Any) -> BatchSummary:
    """One manifest's summary; ValueError / TypeError / KeyError for one that is not what a
    commit writes (the caller skips it and says how many it skipped)."""
    if not isinstance(manifest, dict):
        raise TypeError("not a JSON object")
    counts = manifest.get("counts") or {}
    files = manifest.get("files") or []
    if not isinstance(counts, dict) or not isinstance(files, list):
        raise TypeError("counts or files of the wrong type")
    types = frozenset(m[1] for f in files if isinstance(f, str) and (m := _BRONZE_TYPE.search(f)))
    reasons = manifest.get("quarantine_reasons") or {}
    if not isinstance(reasons, dict):
        raise TypeError("quarantine_reasons is not an object")
    return BatchSummary(
        ingest_time=utc(datetime.fromisoformat(str(manifest["ingest_time"]))),
        event_types=types,
        landed=_count(counts.get("landed")),
        quarantined=_count(counts.get("quarantined")),
        reasons=tuple(sorted((str(k), _count(v)) for k, v in reasons.items())),
    )


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"count {value!r} is not a non-negative integer")
    return value


# lake dir -> manifest -> ((mtime, size), its summary or None when unreadable)
_SUMMARIES: dict[Path, dict[Path, tuple[tuple[int, int], BatchSummary | None]]] = {}
_LOCK = threading.Lock()


def batches(lake_dir: Path) -> tuple[list[BatchSummary], int]:
    """Every committed batch of the lake, and how many manifests could not be read. A manifest
    is read once per process (again only if its file changed, which a commit never does)."""
    paths = LakeLayout(lake_dir).committed_manifests().values()
    out: list[BatchSummary] = []
    unreadable = 0
    with _LOCK:
        known = _SUMMARIES.get(lake_dir, {})
        seen: dict[Path, tuple[tuple[int, int], BatchSummary | None]] = {}
        for path in paths:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # removed since it was listed: no batch
            stamp = (st.st_mtime_ns, st.st_size)
            cached = known.get(path)
            if cached is not None and cached[0] == stamp:
                summary = cached[1]
            else:
                try:
                    summary = summarise(orjson.loads(path.read_bytes()))
                except FileNotFoundError:
                    continue
                except (OSError, ValueError, TypeError, KeyError):
                    summary = None
            seen[path] = (stamp, summary)
            if summary is None:
                unreadable += 1
            else:
                out.append(summary)
        _SUMMARIES[lake_dir] = seen
    return out, unreadable


def _skipped(unreadable: int) -> str:
    return f"; {unreadable} unreadable manifest(s) skipped" if unreadable else ""


def freshness_source(settings: Settings, now: datetime) -> list[CheckResult]:
    """Per event type: minutes since the newest batch that landed events of that type."""
    rule = "freshness_source"
    default = settings.check_source_max_age_minutes
    found, unreadable = batches(settings.lake_dir)
    newest: dict[str, datetime] = {}
    for batch in found:
        for event_type in batch.event_types:
            if event_type not in newest or batch.ingest_time > newest[event_type]:
                newest[event_type] = batch.ingest_time
    if not newest:
        return [
            unknown(
                rule, "lake", "no event landed in the lake yet" + _skipped(unreadable),
                default, "minutes",
            )
        ]  # fmt: skip
    results = []
    for event_type, ingested in newest.items():
        limit = settings.check_source_max_age_by_type.get(event_type, default)
        results.append(
            judged(
                rule, event_type, age(now, ingested, 60.0), limit, "minutes",
                f"newest batch ingested {when(ingested)}" + _skipped(unreadable),
            )
        )  # fmt: skip
    return results


def dead_letter_rate(settings: Settings, now: datetime) -> list[CheckResult]:
    """quarantined / (landed + quarantined) over the batches ingested in the window (duplicates
    are neither: a redelivered event is no defect of the data)."""
    rule = "dead_letter_rate"
    hours = settings.check_dead_letter_window_hours
    limit = settings.check_dead_letter_max_rate
    since = now - timedelta(hours=hours)
    found, unreadable = batches(settings.lake_dir)
    recent = [b for b in found if b.ingest_time >= since]
    landed = sum(b.landed for b in recent)
    quarantined = sum(b.quarantined for b in recent)
    if landed + quarantined == 0:
        return [
            unknown(
                rule, "ingest",
                f"no record ingested in the last {hours:g} h" + _skipped(unreadable),
                limit, "ratio",
            )
        ]  # fmt: skip
    reasons: Counter[str] = Counter()
    for batch in recent:
        reasons.update(dict(batch.reasons))
    detail = (
        f"{quarantined:,} of {landed + quarantined:,} records quarantined in the last "
        f"{hours:g} h over {len(recent):,} batch(es)"
    )
    if reasons:
        detail += f" ({count_list(dict(reasons))})"
    return [
        judged(
            rule, "ingest", quarantined / (landed + quarantined), limit, "ratio",
            detail + _skipped(unreadable),
        )
    ]  # fmt: skip
