"""Forecasts and risk: what the models say — shipments likely to be late, demand ahead, and
what a price change does to sales.

For operations (act on a shipment before it is late), pharmacies (stock what will sell) and
pricing (the elasticity per product, seasonal confounding removed). All from the query layer
(serve/query/ml.py) over the gold score tables `pharmaflow score` writes; each table says
which model version produced it. Before the first scoring the page says how to get scores.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import facilities, ml
from pharmaflow.serve.query.base import Filters, Page


def forecast_chart(points: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=[p["target_date"] for p in points],
            y=[p["forecast_units"] for p in points],
            mode="lines+markers",
            line={"color": "#1565c0", "width": 3},
            customdata=[[p["horizon_days"]] for p in points],
            hovertemplate="%{x}: %{y:,.0f} units (%{customdata[0]} days ahead)",
        )
    )
    fig.update_layout(height=340, margin={"t": 30, "b": 10}, yaxis={"title": "units"})
    return fig


def elasticity_chart(items: list[dict[str, Any]]) -> go.Figure:
    ordered = sorted(items, key=lambda e: e["elasticity"])
    fig = go.Figure(
        go.Bar(
            x=[e["elasticity"] for e in ordered],
            y=[e["product_name"] or e["ndc"] for e in ordered],
            orientation="h",
            marker_color="#6a1b9a",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(e["ci_high"] or e["elasticity"]) - e["elasticity"] for e in ordered],
                "arrayminus": [e["elasticity"] - (e["ci_low"] or e["elasticity"]) for e in ordered],
            },
        )
    )
    fig.update_layout(
        height=max(300, 24 * len(ordered)),
        margin={"t": 30, "b": 10},
        xaxis={"title": "% change in units per % change in price"},
    )
    return fig


def main() -> None:
    st.title("Forecasts and risk")
    ctx = common.context()
    common.freshness(ctx)
    versions = ml.models(ctx)["items"]
    if not versions:
        st.info("No model has scored yet: run `pharmaflow train` and then `pharmaflow score`.")
        st.stop()
    st.caption(
        "Scores by " + " · ".join(f"{v['model_name']} v{v['model_version']}" for v in versions)
    )
    pharmacy = st.sidebar.selectbox(
        "Pharmacy (forecast)",
        ["All", *sorted({f["facility_id"] for f in _pharmacies(ctx)})],
        key="ml_pharmacy",
    )

    st.subheader("Shipments likely to be late")
    threshold = None  # the model's own cut (its card): the shipments it predicts late
    if not st.toggle("Those the model predicts late", value=True, key="ml_predicted"):
        threshold = st.slider("At least this likely", 0.0, 1.0, 0.3, 0.05, key="ml_threshold")
    risk = ml.delay_risk(ctx, Filters(), Page(limit=100), threshold, open_only=True)
    cols = st.columns(2)
    cols[0].metric(
        "Open shipments at risk", f"{len(risk['items'])}{'+' if risk['next_cursor'] else ''}"
    )
    if risk["items"]:
        cols[1].metric("Highest risk", f"{risk['items'][0]['delay_probability']:.0%}")
        st.dataframe(
            [
                {
                    "shipment": r["shipment_id"],
                    "carrier": r["carrier_id"],
                    "service": r["service_level"],
                    "status": r["current_status"],
                    "promised (UTC)": r["promised_delivery_time"],
                    "late risk": r["delay_probability"],
                }
                for r in risk["items"]
            ],
            hide_index=True,
            column_config={"late risk": st.column_config.ProgressColumn(min_value=0, max_value=1)},
        )
    else:
        st.success("No open shipment is that likely to be late.")

    st.subheader("Demand forecast")
    filters = Filters(pharmacy_id=None if pharmacy == "All" else pharmacy)
    forecast = ml.demand_forecast(ctx, filters)["items"]
    if forecast:
        st.plotly_chart(forecast_chart(forecast), key="forecast")
    else:
        st.info("No forecast for this selection.")

    st.subheader("Price elasticity")
    items = ml.elasticities(ctx)["items"]
    if items:
        st.plotly_chart(elasticity_chart(items), key="elasticity")
    else:
        st.info("No elasticity estimate yet.")


def _pharmacies(ctx: Any) -> list[dict[str, Any]]:
    return facilities.facilities(ctx, "PHARMACY")


main()
