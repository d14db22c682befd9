"""Read-only SQL over the warehouse, for `pharmaflow sql`.

The connection is opened read-only and without external access, so a query can neither change
the warehouse nor read or write other files; several readers can run at once (DuckDB allows
many read-only processes or one writer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from pharmaflow.errors import PharmaflowError


def run_query(path: Path, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    if not path.exists():
        raise PharmaflowError(f"no warehouse at {path}: run `pharmaflow build` (or demo) first")
    try:
        with duckdb.connect(
            str(path), read_only=True, config={"enable_external_access": False}
        ) as con:
            cursor = con.execute(query)
            if cursor.description is None:
                return [], []
            columns = [d[0] for d in cursor.description]
            return columns, cursor.fetchall()
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        raise PharmaflowError(f"query failed: {message}") from None
