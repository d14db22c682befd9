"""The dashboard in a real headless Chromium: every page renders with data, no error and no
patient identifier, and the live page updates by itself while events flow.

The pages are the ones `dashboard/app.py` lists in SECTIONS when the test runs (read from its
source, not hard-coded), served by a real Streamlit process (tests/e2e/serve_servers.py). A page
is judged once Streamlit finished running it (`stApp`'s script state), its charts drew and its
freshness caption shows. PHI is searched for in the page's text, its HTML (a dataframe is a
canvas; its cells live in an accessibility table) and every websocket frame the server sent the
browser (the whole dataframes, not just the rows on screen).

Screenshots (one full page per page, viewport 1400x900) go to `PHARMAFLOW_SCREENSHOTS` or, by
default, tests/artifacts/screenshots/ (kept as the run's artifacts; `make screenshots` points
it at docs/screenshots/ for the README).
"""

from __future__ import annotations

import ast
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest

from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from tests.e2e.serve_servers import (
    DASHBOARD_APP,
    ROOT,
    Server,
    dashboard_server,  # noqa: F401 - a fixture
    data_dir_env,
    ml_dashboard_server,  # noqa: F401 - a fixture
    start_dashboard,
)
from tests.phi_scan import leaks
from tests.serve_data import served_settings

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}
PAGE_TIMEOUT_MS = 60_000
LIVE_UPDATE_TIMEOUT_S = 30.0
LIVE_METRIC = "Events counted live"
FRESHNESS = "Data as of"
DEFAULT_SHOTS = ROOT / "tests" / "artifacts" / "screenshots"
# The live page's own small world: one simulated file, cut in two by line count.
LIVE_SIM = SimConfig(seed=23, days=2, scale=0.05)

# Pages showing what only a data dir with scored models has: judged over the ML data dir
# (ml_dashboard_server); over the unscored served one they say how to get scores.
SCORED_PAGES = {"models"}
NOT_SCORED = "No model has scored yet"

APP_DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
DATA = '[data-testid="stMain"] :is(.js-plotly-plot, [data-testid="stDataFrame"])'


def _app_constant(name: str) -> ast.expr:
    """The value of a module-level assignment in app.py, read from the source so the test
    follows the app without running it (importing app.py would start a Streamlit script)."""
    for node in ast.parse(DASHBOARD_APP.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.value
    raise AssertionError(f"no {name} in {DASHBOARD_APP}")


def dashboard_pages() -> list[tuple[str, str]]:
    """(url_path, title) of every page in app.py's SECTIONS."""
    sections = ast.literal_eval(_app_constant("SECTIONS"))
    return [
        (name.removesuffix(".py"), title)
        for entries in sections.values()
        for name, title, _icon in entries
    ]


def pages_folder() -> Path:
    """The folder app.py takes its page files from (`PAGES = Path(__file__).parent / "..."`)."""
    value = _app_constant("PAGES")
    assert isinstance(value, ast.BinOp) and isinstance(value.right, ast.Constant), ast.dump(value)
    return DASHBOARD_APP.parent / str(value.right.value)


PAGES = dashboard_pages()


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("PHARMAFLOW_SCREENSHOTS") or DEFAULT_SHOTS)
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------- patient data


@dataclass(frozen=True)
class Phi:
    values: set[str]  # MRNs, phones, e-mails, dates of birth, streets: matched as substrings
    names: set[str]  # first and last names: whole words in text, substrings in raw frames


def raw_phi(events: Path) -> Phi:
    """Every patient identifier the simulator wrote into pharmacy.order.placed payloads."""
    values: set[str] = set()
    names: set[str] = set()
    with open(events, "rb") as fh:
        for line in fh:
            if b'"pharmacy.order.placed"' not in line:
                continue
            try:
                patient = orjson.loads(line)["payload"]["patient"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a malformed line the simulator wrote on purpose
            if not isinstance(patient, dict):
                continue
            for key in ("patient_id", "phone", "email", "date_of_birth"):
                if isinstance(patient.get(key), str) and len(patient[key]) >= 5:
                    values.add(patient[key])
            street = (patient.get("address") or {}).get("street")
            if isinstance(street, str) and street:
                values.add(street)
            for key in ("first_name", "last_name"):
                if isinstance(patient.get(key), str):
                    names.update(re.findall(r"[^\W\d_]{3,}", patient[key]))
    assert values and names, f"no patient in {events}"
    return Phi(values, names)


def frame_leaks(frames: list[bytes], phi: Phi) -> list[str]:
    """PHI in raw websocket frames (protobuf and Arrow: strings sit back to back, so names
    are matched as substrings; the simulator's names are distinctive enough for that)."""
    text = "\n".join(f.decode("utf-8", errors="replace") for f in frames)
    return sorted(v for v in phi.values | phi.names if v in text)


@pytest.fixture(scope="module")
def phi(served) -> Phi:
    return raw_phi(served.events)


@pytest.fixture(scope="module")
def ml_phi(ml_scored) -> Phi:
    return raw_phi(ml_scored.events)


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A browser page that records every websocket frame the dashboard sends it."""

    page: Any
    frames: list[bytes] = field(default_factory=list)

    def listen(self) -> None:
        def on_socket(ws: Any) -> None:
            ws.on("framereceived", lambda payload: self.frames.append(_bytes(payload)))

        self.page.on("websocket", on_socket)


def _bytes(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else str(payload).encode()


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        opened = Tab(context.new_page())
        opened.listen()
        yield opened
    finally:
        context.close()


def wait_until_rendered(page: Any) -> None:
    """Streamlit finished the run, the page shows data, and every chart drew."""
    page.wait_for_selector(APP_DONE, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(DATA, state="attached", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                 .every(c => c.querySelector('.js-plotly-plot .main-svg'))""",
        timeout=PAGE_TIMEOUT_MS,
    )
    page.wait_for_selector(APP_DONE, timeout=PAGE_TIMEOUT_MS)


def fill_suggested_inputs(page: Any) -> bool:
    """A page waiting for input (recall: a lot number) suggests one as the input's
    placeholder: enter it, so the page is judged (and pictured) with an answer on it.
    Returns whether anything was entered."""
    entered = False
    for box in page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input').all():
        suggestion = box.get_attribute("placeholder") or ""
        if not box.input_value() and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", suggestion):
            box.fill(suggestion)
            box.press("Enter")
            entered = True
    if entered:
        page.wait_for_timeout(300)  # the rerun starts; then wait for it to end
        wait_until_rendered(page)
    return entered


def open_page(tab: Tab, server: Server, url_path: str) -> str:
    """Open a page, wait until it rendered; its visible text."""
    page = tab.page
    # the navigation's first page is its default, served at the root URL only
    path = "" if url_path == PAGES[0][0] else url_path
    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")
    wait_until_rendered(page)
    return page.inner_text("body")


def assert_healthy(page: Any, text: str, url_path: str) -> None:
    # the navigation's first page is its default: Streamlit serves it at the root URL
    default = url_path == PAGES[0][0] and urlparse(page.url).path in ("", "/")
    landed = default or page.url.rstrip("/").endswith(f"/{url_path}")
    assert landed, f"{url_path}: landed on {page.url}"
    assert "Page not found" not in text, f"{url_path}: Streamlit does not know the page"
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{url_path}: {exceptions.first.inner_text()[:2000]}"
    assert "Traceback" not in text, f"{url_path}: a traceback on the page:\n{text[:3000]}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{url_path}: an error on the page: {errors.first.inner_text()}"
    assert FRESHNESS in text, f"{url_path}: no freshness caption ({FRESHNESS!r}):\n{text[:2000]}"
    # Opened by its URL, the page still runs inside app.py's navigation (its sections and
    # titles in the sidebar), not as a loose script of Streamlit's own `pages/` convention.
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    missing = [t for _, t in PAGES if t not in nav]
    assert not missing, (
        f"{url_path}: opened by its URL, the sidebar lacks {missing} (it shows {nav[:200]!r}): "
        "the page ran outside app.py's st.navigation"
    )


@pytest.mark.parametrize(("url_path", "title"), PAGES, ids=[p for p, _ in PAGES])
def test_pages_render_with_data_and_no_phi(
    request: pytest.FixtureRequest, tab: Tab, url_path: str, title: str
) -> None:
    scored = url_path in SCORED_PAGES
    server: Server = request.getfixturevalue(
        "ml_dashboard_server" if scored else "dashboard_server"
    )
    phi: Phi = request.getfixturevalue("ml_phi" if scored else "phi")
    text = open_page(tab, server, url_path)
    assert_healthy(tab.page, text, url_path)
    if fill_suggested_inputs(tab.page):
        text = tab.page.inner_text("body")
        assert_healthy(tab.page, text, url_path)
    assert title in tab.page.inner_text('[data-testid="stMain"]'), f"{url_path}: no {title!r}"
    tab.page.screenshot(path=str(screenshot_dir() / f"{url_path}.png"), full_page=True)

    html = tab.page.content()
    found = leaks([text, html], phi.values, phi.names)
    assert not found, f"{url_path}: patient identifiers on the page: {found[:10]}"
    assert tab.frames, f"{url_path}: no websocket frame recorded"
    found = frame_leaks(tab.frames, phi)
    assert not found, f"{url_path}: patient identifiers sent to the browser: {found[:10]}"


@pytest.mark.parametrize("url_path", sorted(SCORED_PAGES))
def test_a_models_page_before_any_scoring_says_how_to_get_scores(
    dashboard_server: Server,  # noqa: F811 - the fixture
    tab: Tab,
    url_path: str,
) -> None:
    tab.page.goto(f"{dashboard_server.url}/{url_path}", wait_until="domcontentloaded")
    tab.page.wait_for_selector(APP_DONE, timeout=PAGE_TIMEOUT_MS)
    tab.page.get_by_text(NOT_SCORED).wait_for(timeout=PAGE_TIMEOUT_MS)
    text = tab.page.inner_text("body")
    assert "pharmaflow train" in text and "pharmaflow score" in text, text[:2000]
    assert tab.page.locator('[data-testid="stException"]').count() == 0
    assert FRESHNESS in text


def test_every_section_page_exists() -> None:
    """Each page SECTIONS lists has its file (a missing one is an error page in the app)."""
    pages = pages_folder()
    missing = [p for p, _ in PAGES if not (pages / f"{p}.py").is_file()]
    assert PAGES and not missing, f"pages listed in SECTIONS without a file: {missing}"


# --------------------------------------------------------------------------- the live page


@dataclass(frozen=True)
class LiveWorld:
    settings: Any
    first: Path
    second: Path


@pytest.fixture(scope="module")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> LiveWorld:
    """A data dir whose speed layer has counted the first half of a simulated file and whose
    warehouse is built from it; the second half (later events) is left to feed while the page
    is open."""
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.realtime.workers import run_realtime_worker
    from pharmaflow.warehouse.runner import build

    work = tmp_path_factory.mktemp("live")
    whole = work / "events.jsonl"
    simulate(LIVE_SIM, whole)
    lines = whole.read_bytes().splitlines(keepends=True)
    cut = len(lines) // 2
    first, second = work / "first.jsonl", work / "second.jsonl"
    first.write_bytes(b"".join(lines[:cut]))
    second.write_bytes(b"".join(lines[cut:]))
    settings = served_settings(work / "data")
    run_ingest(settings, str(first))
    run_realtime_worker(settings, str(first))
    result = build(settings)
    assert result.success, result.failures
    return LiveWorld(settings, first, second)


def live_count(page: Any) -> int | None:
    """The number under the "Events counted live" metric, or None while it is not shown."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=LIVE_METRIC)
    if metric.count() == 0:
        return None
    value = metric.first.locator('[data-testid="stMetricValue"]').inner_text()
    digits = re.sub(r"[^\d]", "", value)
    return int(digits) if digits else None


def test_live_operations_update_by_themselves(live_world: LiveWorld, browser) -> None:
    from pharmaflow.realtime.workers import run_realtime_worker

    root = live_world.settings.root
    server = start_dashboard(data_dir_env(root), root.parent / "dashboard-logs")
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/", wait_until="domcontentloaded")
        wait_until_rendered(page)
        before = live_count(page)
        assert before is not None and before > 0, f"no {LIVE_METRIC!r} on the live page"
        page.evaluate("() => { window.pharmaflowMarker = 42; }")  # a reload would drop it

        run_realtime_worker(live_world.settings, str(live_world.second))

        deadline = time.monotonic() + LIVE_UPDATE_TIMEOUT_S
        after = before
        while time.monotonic() < deadline and after <= before:
            page.wait_for_timeout(500)
            after = live_count(page) or before
        assert after > before, (
            f"{LIVE_METRIC} stayed at {before} for {LIVE_UPDATE_TIMEOUT_S:.0f} s after the "
            "speed layer counted more events"
        )
        assert page.evaluate("() => window.pharmaflowMarker") == 42, "the page was reloaded"
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        context.close()
        server.stop()
