"""Sources the ingest engine reads from, chosen by the `--source` argument."""

from __future__ import annotations

from pathlib import Path

from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources.base import RawBatch, Source
from pharmaflow.ingest.sources.files import CsvFileSource, JsonlFileSource

JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}


def open_sources(spec: str, registry: ContractRegistry) -> list[Source]:
    """A file, or every JSONL/CSV file in a directory (sorted), as sources."""
    if "://" in spec:
        scheme = spec.split("://", 1)[0]
        raise PharmaflowError(f"source scheme {scheme}:// is not supported yet (files only)")
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and (p.suffix in JSON_SUFFIXES or p.suffix == ".csv")
        )
        if not files:
            raise PharmaflowError(f"no .jsonl or .csv files in {path}")
        return [_file_source(p, registry) for p in files]
    if not path.exists():
        raise PharmaflowError(f"source not found: {path}")
    return [_file_source(path, registry)]


def _file_source(path: Path, registry: ContractRegistry) -> Source:
    if path.suffix == ".csv":
        return CsvFileSource(path)
    if path.suffix in JSON_SUFFIXES:
        return JsonlFileSource(path)
    raise PharmaflowError(f"{path}: unknown file type {path.suffix!r} (use .jsonl or .csv)")


__all__ = ["CsvFileSource", "JsonlFileSource", "RawBatch", "Source", "open_sources"]
