"""Production performance: how busy each piece of equipment was, and a batch's sensors in spec.

For plant operations: equipment utilisation over the chosen period (run hours / period hours,
kpi_quality's definition cut to the dates), and for a chosen batch its sensor readings over
time drawn against the spec band (a filled area between spec_min and spec_max), downsampled by
the query layer to a bounded number of points. No SQL and no patient data on this page.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import manufacturing

SENSOR_TYPES = ["TEMPERATURE", "HUMIDITY", "PRESSURE", "VIBRATION"]


def utilisation_chart(rows: list[dict[str, Any]]) -> go.Figure:
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_site[row["site_id"] or "unknown"].append(row)
    fig = go.Figure()
    for site, items in sorted(by_site.items()):
        fig.add_bar(
            x=[r["equipment_name"] or r["equipment_id"] for r in items],
            y=[100 * (r["utilisation"] or 0) for r in items],
            name=site,
            customdata=[[r["equipment_id"], r["busy_hours"], r["batches"]] for r in items],
            hovertemplate="%{customdata[0]}: %{y:.1f} % busy, %{customdata[1]} h, "
            "%{customdata[2]} batches",
        )
    fig.update_layout(
        height=380,
        margin={"t": 30, "b": 10},
        yaxis={"title": "share of the period busy %"},
        legend={"title": "site"},
    )
    return fig


def sensor_chart(points: list[dict[str, Any]], sensor_id: str) -> go.Figure:
    """One sensor's readings (bucket means, min-max whiskers in the hover) inside its band."""
    mine = [p for p in points if p["sensor_id"] == sensor_id]
    x = [p["at"] for p in mine]
    unit = mine[0]["unit"] if mine else ""
    fig = go.Figure()
    # The band: spec_max first, then spec_min filled up to it.
    fig.add_scatter(
        x=x,
        y=[p["spec_max"] for p in mine],
        mode="lines",
        line={"width": 0.5, "color": "rgba(46,125,50,0.6)"},
        name="spec max",
    )
    fig.add_scatter(
        x=x,
        y=[p["spec_min"] for p in mine],
        mode="lines",
        line={"width": 0.5, "color": "rgba(46,125,50,0.6)"},
        fill="tonexty",
        fillcolor="rgba(46,125,50,0.15)",
        name="spec min",
    )
    fig.add_scatter(
        x=x,
        y=[p["value"] for p in mine],
        mode="lines",
        line={"color": "#1565c0"},
        name="reading (mean)",
        customdata=[[p["min_value"], p["max_value"], p["readings"]] for p in mine],
        hovertemplate="%{y} (min %{customdata[0]}, max %{customdata[1]}, "
        "%{customdata[2]} readings)",
    )
    out = [p for p in mine if p["out_of_spec"]]
    if out:
        fig.add_scatter(
            x=[p["at"] for p in out],
            y=[_worst(p) for p in out],
            mode="markers",
            marker={"color": "#c62828", "size": 8},
            name="out of spec",
        )
    fig.update_layout(
        title=sensor_id,
        height=340,
        margin={"t": 40, "b": 10},
        yaxis={"title": unit or "value"},
        legend={"orientation": "h"},
    )
    return fig


def _worst(point: dict[str, Any]) -> float:
    """The bucket's reading furthest outside the band: its max if above, else its min."""
    above = point["spec_max"] is not None and point["max_value"] > point["spec_max"]
    return point["max_value"] if above else point["min_value"]


def main() -> None:
    st.title("Production performance")
    ctx = common.context()
    common.freshness(ctx)
    filters = common.filters(ctx, pharmacy=False)

    st.subheader("Equipment utilisation")
    rows = manufacturing.equipment_utilisation(ctx, filters)
    if rows and rows[0]["period_hours"]:
        period = f"{rows[0]['period_from']:%Y-%m-%d %H:%M} to {rows[0]['period_to']:%Y-%m-%d %H:%M}"
        st.caption(f"Busy share of {rows[0]['period_hours']} h observed ({period} UTC)")
        st.plotly_chart(utilisation_chart(rows), key="utilisation")
        st.dataframe(rows, hide_index=True)
    else:
        st.info("The warehouse observed no production in the chosen period.")

    st.subheader("Sensor trend of a batch")
    batch_ids = manufacturing.batch_ids(ctx, filters)
    if not batch_ids:
        st.info("No batch started in the chosen period.")
        return
    left, right = st.columns(2)
    batch_id = left.selectbox("Batch", batch_ids, key="batch")
    sensor_type = right.selectbox("Sensor type", SENSOR_TYPES, key="sensor_type")
    points = manufacturing.sensor_trend(ctx, batch_id, sensor_type)
    if not points:
        st.info(f"No {sensor_type.lower()} readings for {batch_id}.")
        return
    for sensor_id in sorted({p["sensor_id"] for p in points}):
        st.plotly_chart(sensor_chart(points, sensor_id), key=f"sensor_{sensor_id}")
    readings = sum(p["readings"] for p in points)
    out = sum(p["out_of_spec"] for p in points)
    st.caption(
        f"{readings} readings, {out} out of spec; at most {manufacturing.SENSOR_TREND_POINTS} "
        "points per sensor (each the mean of its time bucket)"
    )


main()
