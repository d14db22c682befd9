"""The dashboard environment as a fixture, for page tests that share one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.serve.dashboard.apptest import dashboard_env as environment


@pytest.fixture(scope="module")
def dashboard_env(served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with environment(served, tmp_path_factory.mktemp("dashboard") / "security.db"):
        yield
