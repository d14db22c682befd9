"""What every dashboard page shares: the query layer, the sidebar filters, the freshness line.

The dashboard is a Streamlit app reading the same query layer as the API (serve/query/): no
SQL lives in a page. It reads the data dir named by `PHARMAFLOW_DATA_DIR` (and the usual
`PHARMAFLOW_*` settings), set by `pharmaflow dashboard` / `pharmaflow up`. It binds loopback
by default and shows no patient identifier on any page: it has no login, so it must not.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import streamlit as st

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.query import facilities as facility_queries
from pharmaflow.serve.query.base import Filters, QueryContext

TITLE = "pharmaflow"


@st.cache_resource
def context() -> QueryContext:
    """One QueryContext per dashboard process, shared by its sessions (thread-safe)."""
    return QueryContext(Settings())


def guarded_freshness(ctx: QueryContext) -> dict[str, Any] | None:
    """Freshness, or None (with the reason shown) when nothing has been built yet."""
    try:
        return facility_queries.freshness(ctx)
    except PharmaflowError as exc:
        st.warning(str(exc))
        return None


def freshness(ctx: QueryContext) -> dict[str, Any] | None:
    """Say how fresh the page's data is, in one caption; stop the page when there is no data."""
    info = guarded_freshness(ctx)
    if info is None:
        st.stop()
        return None
    parts = [f"warehouse built {_when(info['built_at'])}"]
    if info["gold_last"] is not None:
        parts.append(f"events to {_when(info['gold_last'])}")
    parts.append(
        "speed layer not running" if info["live"] is None else f"live clock {_when(info['live'])}"
    )
    st.caption("Data as of: " + " · ".join(parts))
    return info


def filters(ctx: QueryContext, *, pharmacy: bool = True, site: bool = True) -> Filters:
    """The sidebar's date range (default: the last 30 days of the data) and site / pharmacy
    selections, as the query layer's Filters."""
    info = guarded_freshness(ctx)
    last = _day(info["gold_last"]) if info and info["gold_last"] else date.today()
    first = _day(info["gold_first"]) if info and info["gold_first"] else last
    default_from = max(first, last - timedelta(days=30))
    st.sidebar.header("Filters")
    picked = st.sidebar.date_input(
        "Dates (UTC)", value=(default_from, last), min_value=first, max_value=last, key="dates"
    )
    date_from, date_to = _range(picked, default_from, last)
    site_id = pharmacy_id = None
    try:
        if site:
            sites = [f["facility_id"] for f in facility_queries.facilities(ctx, "PLANT")]
            site_id = _choice("Site", sites, "site")
        if pharmacy:
            shops = [f["facility_id"] for f in facility_queries.facilities(ctx, "PHARMACY")]
            pharmacy_id = _choice("Pharmacy", shops, "pharmacy")
    except PharmaflowError as exc:
        st.sidebar.warning(str(exc))
    return Filters(date_from=date_from, date_to=date_to, site_id=site_id, pharmacy_id=pharmacy_id)


def _choice(label: str, options: list[str], key: str) -> str | None:
    picked = st.sidebar.selectbox(label, ["All", *options], key=key)
    return None if picked == "All" else picked


def _range(picked: Any, default_from: date, last: date) -> tuple[date, date]:
    if isinstance(picked, tuple | list):
        if len(picked) == 2:
            return picked[0], picked[1]
        if len(picked) == 1:
            return picked[0], picked[0]
        return default_from, last
    return picked, picked


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _when(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"
