"""Bronze: the arrival log, one Parquet part per event type per batch, never rewritten."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout

PROVENANCE_FIELDS = [
    pa.field("ingest_time", pa.timestamp("us")),
    pa.field("source", pa.string()),
    pa.field("source_uri", pa.string()),
    pa.field("source_partition", pa.int32()),
    pa.field("source_offset", pa.int64()),
    pa.field("batch_id", pa.string()),
]
BRONZE_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("event_version", pa.int32()),
        pa.field("event_time", pa.timestamp("us")),
        pa.field("source_system", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("key", pa.string()),
        pa.field("event_json", pa.string()),
        *PROVENANCE_FIELDS,
    ]
)


def write_bronze(
    layout: LakeLayout, table: pa.Table, ingest_time: datetime, batch_id: str
) -> list[Path]:
    """Split a batch's landed rows by event type and write one part per type.

    Rows grouped by type (as ingest hands them over) split into zero-copy slices."""
    if table.num_rows == 0:
        return []
    types = table["event_type"].combine_chunks().dictionary_encode()
    codes = types.indices.to_numpy(zero_copy_only=False)
    names = types.dictionary.to_pylist()
    paths = []
    if _runs_are_unique(codes):
        bounds = np.flatnonzero(np.diff(codes)) + 1
        for start, end in zip([0, *bounds.tolist()], [*bounds.tolist(), len(codes)], strict=True):
            parts = [(names[codes[start]], table.slice(start, end - start))]
            paths += _write_parts(layout, parts, ingest_time, batch_id)
        return paths
    parts = [
        (name, table.take(pa.array(np.flatnonzero(codes == code))))
        for code, name in enumerate(names)
    ]
    return _write_parts(layout, parts, ingest_time, batch_id)


def _runs_are_unique(codes: np.ndarray) -> bool:
    """True when equal codes are contiguous (each type forms one run)."""
    starts = codes[np.r_[True, codes[1:] != codes[:-1]]]
    return len(starts) == len(np.unique(starts))


def _write_parts(
    layout: LakeLayout, parts: list[tuple[str, pa.Table]], ingest_time: datetime, batch_id: str
) -> list[Path]:
    paths = []
    for event_type, part in parts:
        path = layout.bronze_part(event_type, ingest_time, batch_id)
        write_parquet_atomic(part, path)
        paths.append(path)
    return paths


def landed_event_ids(layout: LakeLayout) -> pa.ChunkedArray:
    """Every event id in bronze (run `CommitLog.recover` first so only committed parts count)."""
    if not layout.bronze.exists() or not any(layout.bronze.rglob("*.parquet")):
        return pa.chunked_array([], type=pa.string())
    dataset = ds.dataset(layout.bronze, format="parquet", partitioning=None)
    return dataset.to_table(columns=["event_id"])["event_id"]
