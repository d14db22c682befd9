"""What the dashboard pages' AppTests share: the environment pointing the dashboard at the served
data dir, running a page, and every text a person could read on it (for the PHI scan)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pharmaflow.serve.dashboard import common
from pharmaflow.simulate.people import patient_pool
from tests.conftest import TEST_KEYS
from tests.phi_scan import leaks, phi_values, text_strings
from tests.serve_data import SERVED

PAGES = Path(__file__).parents[4] / "src" / "pharmaflow" / "serve" / "dashboard" / "views"
TIMEOUT_S = 120  # a first run opens the snapshot and imports plotly: generous, not a benchmark


@contextmanager
def dashboard_env(served: Any, security_store: Path) -> Iterator[None]:
    """The environment `pharmaflow dashboard` sets (the served data dir, the keys; a security
    store of the test's own, as the served data dir is shared read-only), with the
    dashboard's process-wide caches (st.cache_resource: the query layer, the audit trail)
    started afresh and closed afterwards: a query layer left open holds the snapshot with its
    own DuckDB connection."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHARMAFLOW_DATA_DIR", str(served.settings.data_dir))
        mp.setenv("PHARMAFLOW_API_CACHE_SECONDS", "0")
        mp.setenv("PHARMAFLOW_SECURITY_STORE", str(security_store))
        for name, value in TEST_KEYS.items():
            mp.setenv(name, value)
        _reset()
        try:
            yield
        finally:
            _reset()


def _reset() -> None:
    common.context().close()  # the cached one, or a fresh one (opened lazily: cheap)
    st.cache_resource.clear()


def run(page: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def freshness_caption(at: AppTest) -> str:
    captions = [c.value for c in at.caption if c.value.startswith("Data as of: ")]
    assert len(captions) == 1, [c.value for c in at.caption]
    return captions[0]


def charts(at: AppTest) -> list[str]:
    """The plotly figures on the page, as the JSON streamlit sends the browser."""
    return [element.proto.spec for element in at.get("plotly_chart")]


def readable_texts(at: AppTest) -> list[str]:
    texts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning"):
        texts += [str(e.value) for e in at.get(kind)]
    texts += [f"{m.label} {m.value}" for m in at.metric]
    texts += [frame.value.to_csv() for frame in at.dataframe]
    texts += charts(at)
    return texts


def assert_no_phi(at: AppTest) -> None:
    values, names = phi_values(patient_pool(SERVED))
    assert leaks(text_strings(readable_texts(at)), values, names) == []


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page, parsed."""
    return [json.loads(spec) for spec in charts(at)]


def assert_fresh(at: AppTest) -> None:
    assert freshness_caption(at).startswith("Data as of: warehouse built")
