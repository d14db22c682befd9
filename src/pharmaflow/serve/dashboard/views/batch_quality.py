"""Batch quality: how many finished batches QA could release, what failed, and yield by equipment.

For plant QA: the pass-rate trend (released / finished per day, kpi_quality's definition) with
the finished batches' dispositions behind it, the newest failures (failed runs, lab FAILs)
with the value against its spec, and the yield each piece of equipment achieves. All from the
query layer (serve/query/manufacturing.py), no SQL here; no patient data exists on this page.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import manufacturing

FLAG_COLOURS = {"released": "#2e7d32", "review": "#f9a825", "rejected": "#c62828"}


def daily_totals(trend: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-day-and-site trend summed over sites (the chart shows one bar per day)."""
    days: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"batches_finished": 0, "released": 0, "review": 0, "rejected": 0}
    )
    for row in trend:
        day = days[row["day"]]
        for key in ("batches_finished", "released", "review", "rejected"):
            day[key] += row[key]
    out = []
    for day, totals in sorted(days.items()):
        rate = (
            totals["released"] / totals["batches_finished"] if totals["batches_finished"] else None
        )
        out.append({"day": day, **totals, "batch_pass_rate": rate})
    return out


def pass_rate_chart(trend: list[dict[str, Any]]) -> go.Figure:
    days = daily_totals(trend)
    x = [d["day"] for d in days]
    fig = go.Figure()
    for key, colour in FLAG_COLOURS.items():
        fig.add_bar(x=x, y=[d[key] for d in days], name=key, marker_color=colour, yaxis="y")
    fig.add_scatter(
        x=x,
        y=[None if d["batch_pass_rate"] is None else 100 * d["batch_pass_rate"] for d in days],
        name="pass rate %",
        mode="lines+markers",
        yaxis="y2",
        line={"color": "#1565c0", "width": 3},
    )
    fig.update_layout(
        barmode="stack",
        height=380,
        margin={"t": 30, "b": 10},
        yaxis={"title": "batches finished"},
        yaxis2={"title": "pass rate %", "overlaying": "y", "side": "right", "range": [0, 105]},
        legend={"orientation": "h"},
    )
    return fig


def yield_chart(rows: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_site[row["site_id"] or "unknown"].append(row)
    for site, items in sorted(by_site.items()):
        fig.add_bar(
            x=[r["equipment_name"] or r["equipment_id"] for r in items],
            y=[r["avg_yield_pct"] for r in items],
            name=site,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r["max_yield_pct"] - r["avg_yield_pct"] for r in items],
                "arrayminus": [r["avg_yield_pct"] - r["min_yield_pct"] for r in items],
            },
            customdata=[[r["batches"], r["equipment_id"]] for r in items],
            hovertemplate="%{customdata[1]}: %{y:.2f} % over %{customdata[0]} batches",
        )
    fig.update_layout(
        height=380,
        margin={"t": 30, "b": 10},
        yaxis={"title": "mean yield %"},
        legend={"title": "site"},
    )
    return fig


def main() -> None:
    st.title("Batch quality")
    ctx = common.context()
    common.freshness(ctx)
    filters = common.filters(ctx, pharmacy=False)

    trend = manufacturing.pass_rate_trend(ctx, filters)
    finished = sum(r["batches_finished"] for r in trend)
    released = sum(r["released"] for r in trend)
    lab_tests = sum(r["lab_tests"] for r in trend)
    passed = sum(r["lab_tests_passed"] for r in trend)
    cols = st.columns(5)
    cols[0].metric("Batches finished", finished)
    cols[1].metric("Released", released)
    cols[2].metric("Rejected", sum(r["rejected"] for r in trend))
    cols[3].metric(
        "Batch pass rate",
        f"{100 * released / finished:.1f} %" if finished else "n/a",
        help="Releasable / finished batches (latest status COMPLETED or FAILED).",
    )
    cols[4].metric(
        "Lab pass rate",
        f"{100 * passed / lab_tests:.1f} %" if lab_tests else "n/a",
        help="PASS / all lab results of the finished batches (CONDITIONAL is not a pass).",
    )

    st.subheader("Pass rate trend")
    if trend:
        st.plotly_chart(pass_rate_chart(trend), key="pass_rate")
    else:
        st.info("No batch finished in the chosen period.")

    st.subheader("Recent failures")
    failures = manufacturing.recent_failures(ctx, filters, limit=50)
    if failures:
        st.dataframe(
            [
                {
                    "when (UTC)": f["failed_at"],
                    "batch": f["batch_id"],
                    "site": f["site_id"],
                    "equipment": f["equipment_id"],
                    "failure": f["kind"],
                    "detail": f["detail"],
                    "disposition": f["quality_flag"],
                }
                for f in failures
            ],
            hide_index=True,
        )
    else:
        st.success("No failed run and no failed lab result in the chosen period.")

    st.subheader("Yield by equipment")
    yields = manufacturing.yield_by_equipment(ctx, filters)
    if yields:
        st.plotly_chart(yield_chart(yields), key="yield")
        st.dataframe(yields, hide_index=True)
    else:
        st.info("No batch completed with a yield in the chosen period.")


main()
