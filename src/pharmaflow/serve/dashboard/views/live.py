"""Live operations: the pharmacy floor now — orders by stage, stuck orders, rejections.

Refreshes itself every few seconds (a Streamlit fragment), reading the speed layer's store
through the query layer; the hourly order series joins gold (before the watermark) and live
(after it), coloured by source. Order ids and pharmacies only: no patient on this page.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from pharmaflow.serve.dashboard.common import context, filters, freshness
from pharmaflow.serve.query import kpis, orders
from pharmaflow.serve.query.base import Filters, Page

REFRESH_SECONDS = 3

st.title("Live operations")
ctx = context()
chosen = filters(ctx, site=False)


@st.fragment(run_every=REFRESH_SECONDS)
def board(chosen: Filters) -> None:
    freshness(ctx)
    live_filters = Filters(pharmacy_id=chosen.pharmacy_id)
    state = orders.live_board(ctx, live_filters)
    if not state["running"]:
        st.info("The speed layer has not run yet: start `pharmaflow realtime` (or `up`).")
    stuck_total = sum(s["stuck"] for s in state["stages"])
    rate = state["rejection_rate"]
    cols = st.columns(5)
    cols[0].metric("Events counted live", f"{state['events_counted']:,}")
    cols[1].metric("Orders waiting", f"{state['orders_waiting']:,}")
    cols[2].metric("Stuck orders", f"{stuck_total:,}")
    cols[3].metric("Rejection rate (last hour)", "n/a" if rate is None else f"{rate:.1%}")
    cols[4].metric("Shipments in excursion", f"{state['shipments_in_excursion']:,}")

    left, right = st.columns(2)
    stages = pd.DataFrame(state["stages"] or [], columns=["stage", "waiting", "stuck"])
    if not stages.empty:
        stages["on time"] = stages["waiting"] - stages["stuck"]
        chart = px.bar(
            stages.melt(id_vars="stage", value_vars=["on time", "stuck"]),
            x="stage",
            y="value",
            color="variable",
            title="Orders waiting, by stage",
            labels={"value": "orders", "variable": ""},
            color_discrete_map={"on time": "#4c78a8", "stuck": "#e45756"},
        )
        left.plotly_chart(chart, width="stretch")
    series = kpis.series(ctx, "orders_placed", "hour", chosen)
    points = pd.DataFrame(series["points"] or [], columns=["start", "value", "source", "final"])
    if not points.empty:
        line = px.bar(
            points.tail(72),
            x="start",
            y="value",
            color="source",
            title="Orders placed per hour (gold, then live after the watermark)",
            labels={"start": "hour (UTC)", "value": "orders"},
            color_discrete_map={"gold": "#72b7b2", "live": "#f58518"},
        )
        right.plotly_chart(line, width="stretch")

    st.subheader("Stuck orders, longest wait first")
    page = orders.stuck(ctx, live_filters, Page(limit=50))
    table = pd.DataFrame(page["items"])
    if table.empty:
        st.write("No order is stuck.")
    else:
        st.dataframe(
            table[["order_id", "pharmacy_id", "stage", "waiting_hours", "stuck_after_hours"]],
            hide_index=True,
            width="stretch",
        )


board(chosen)
