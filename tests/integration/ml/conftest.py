"""The model tests read the shared 9-week warehouse (`ml_warehouse`) through one MlData per
module: the published snapshot, opened read-only, as `pharmaflow train` reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pharmaflow.ml.data import MlData


@pytest.fixture(scope="module")
def data(ml_warehouse) -> Iterator[MlData]:
    with MlData(ml_warehouse.settings) as opened:
        yield opened
