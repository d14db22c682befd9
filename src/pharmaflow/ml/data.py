"""Read-only access to the warehouse snapshot the models train and score on.

Training reads the snapshot a build published (warehouse/publish.py), never the file a build
writes, so training can run beside a build and serving; the snapshot id is logged with each
run as the data version it used.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse import publish
from pharmaflow.warehouse.query import reader_config


class MlData:
    """One published snapshot, opened read-only for the life of the object."""

    def __init__(self, settings: Settings) -> None:
        snap = publish.current(settings.snapshots_dir)
        if snap is None:
            raise PharmaflowError(
                f"no warehouse to train on in {settings.data_dir}: run `pharmaflow build` first"
            )
        self.settings = settings
        self.snapshot_id = snap.id
        self.path: Path = snap.path
        self._stack = ExitStack()
        config = self._stack.enter_context(reader_config(snap.path))
        self._con = duckdb.connect(str(snap.path), read_only=True, config=config)

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The result of one read-only query as a pandas frame."""
        return self._con.execute(sql, list(params)).df()

    def table(self, name: str) -> pd.DataFrame:
        """A whole table, e.g. `gold.ml_shipment_features`."""
        schema, _, table = name.rpartition(".")
        return self.frame(f'select * from "{schema or "gold"}"."{table}"')

    def has_table(self, name: str) -> bool:
        schema, _, table = name.rpartition(".")
        row = self._con.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = ?",
            [schema or "gold", table],
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self._con.close()
        self._stack.close()

    def __enter__(self) -> MlData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
