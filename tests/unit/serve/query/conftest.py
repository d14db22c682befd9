"""The query layer's context on the served data dir, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pharmaflow.serve.query.base import QueryContext


@pytest.fixture(scope="module")
def ctx(served) -> Iterator[QueryContext]:
    context = QueryContext(served.settings)
    yield context
    context.close()
