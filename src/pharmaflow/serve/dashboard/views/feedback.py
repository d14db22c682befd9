"""Patient feedback: how likely patients are to recommend us, how they rate us, what they say.

For patient experience: the Net Promoter Score per period (% promoters minus % detractors,
kpi_nps's definition) with the responses behind it, the star-rating distribution, and the
comments as ingest stored them, already scrubbed of names, phone numbers and e-mails. All
from the query layer (serve/query/feedback.py); the page shows no patient identifier and no
patient key.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import feedback
from pharmaflow.serve.query.base import Page

RATING_COLOURS = ["#c62828", "#ef6c00", "#f9a825", "#7cb342", "#2e7d32"]


def nps_chart(trend: list[dict[str, Any]]) -> go.Figure:
    x = [r["period"] for r in trend]
    fig = go.Figure()
    for key, colour in (
        ("promoters", "#2e7d32"),
        ("passives", "#9e9e9e"),
        ("detractors", "#c62828"),
    ):
        fig.add_bar(x=x, y=[r[key] for r in trend], name=key, marker_color=colour, yaxis="y")
    fig.add_scatter(
        x=x,
        y=[r["nps"] for r in trend],
        name="NPS",
        mode="lines+markers",
        yaxis="y2",
        line={"color": "#1565c0", "width": 3},
    )
    fig.update_layout(
        barmode="stack",
        height=380,
        margin={"t": 30, "b": 10},
        yaxis={"title": "responses"},
        yaxis2={"title": "NPS", "overlaying": "y", "side": "right", "range": [-100, 100]},
        legend={"orientation": "h"},
    )
    return fig


def ratings_chart(ratings: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=[f"{r['rating']} star" + ("s" if r["rating"] > 1 else "") for r in ratings],
            y=[r["surveys"] for r in ratings],
            marker_color=RATING_COLOURS[: len(ratings)],
            customdata=[[r["share_pct"] or 0] for r in ratings],
            hovertemplate="%{x}: %{y} surveys (%{customdata[0]:.1f} %)",
        )
    )
    fig.update_layout(height=320, margin={"t": 30, "b": 10}, yaxis={"title": "surveys"})
    return fig


def main() -> None:
    st.title("Patient feedback")
    ctx = common.context()
    common.freshness(ctx)
    filters = common.filters(ctx, site=False)
    period = st.sidebar.radio(
        "Period", ["day", "week", "month"], horizontal=True, key="feedback_period"
    )

    trend = feedback.nps_trend(ctx, filters, period)
    overall = trend["overall"] or {}
    cols = st.columns(4)
    cols[0].metric("NPS", "n/a" if overall.get("nps") is None else f"{overall['nps']:+.1f}")
    cols[1].metric("Responses", overall.get("responses", 0))
    cols[2].metric(
        "Promoters / detractors",
        "n/a"
        if overall.get("promoter_pct") is None
        else f"{overall['promoter_pct']:.0f} % / {overall['detractor_pct']:.0f} %",
    )
    cols[3].metric(
        "Mean rating",
        "n/a" if overall.get("avg_rating") is None else f"{overall['avg_rating']:.2f} / 5",
    )

    st.subheader("Net Promoter Score")
    if trend["items"]:
        st.plotly_chart(nps_chart(trend["items"]), key="nps")
    else:
        st.info("No survey was submitted in the chosen period.")

    st.subheader("Ratings")
    ratings = feedback.rating_distribution(ctx, filters)
    if any(r["surveys"] for r in ratings):
        st.plotly_chart(ratings_chart(ratings), key="ratings")

    st.subheader("Comments")
    st.caption("As stored by ingest: names, phone numbers and e-mails are scrubbed ([NAME], ...).")
    left, right = st.columns(2)
    category = left.selectbox(
        "NPS category", ["All", "PROMOTER", "PASSIVE", "DETRACTOR"], key="feedback_category"
    )
    sentiment = right.selectbox(
        "Sentiment (model)", ["All", *feedback.SENTIMENTS], key="feedback_sentiment"
    )
    found = feedback.comments(
        ctx,
        filters,
        Page(limit=200),
        None if category == "All" else category,
        None if sentiment == "All" else sentiment,
    )
    if found["items"]:
        st.dataframe(
            [
                {
                    "submitted (UTC)": c["submitted_at"],
                    "rating": c["rating"],
                    "NPS": c["nps"],
                    "category": c["nps_category"],
                    "pharmacy": c["pharmacy_id"],
                    "sentiment": c["sentiment_label"],
                    "comment": c["comment"],
                }
                for c in found["items"]
            ],
            hide_index=True,
        )
        if found["next_cursor"]:
            st.caption("The 200 newest comments are listed.")
    else:
        st.info("No comment in the chosen period.")


main()
