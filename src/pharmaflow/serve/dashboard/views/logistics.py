"""Logistics and cold chain: which carrier delivers on time, which loads got warm, and how warm.

For distribution: on-time delivery by carrier and service level over the chosen dates (and its
daily trend), the cold-chain shipments whose logger left the 2-8 C band (from the warehouse,
and what the speed layer sees now), and a chosen shipment's temperature trace against its
spec band. All from the query layer (serve/query/logistics.py), no SQL here; shipments carry
no patient data.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import logistics
from pharmaflow.serve.query.base import Filters, Page

BAND_COLOUR = "rgba(46, 125, 50, 0.15)"


def by_carrier_and_service(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """delivery_performance rows (per period, carrier and service level) summed over periods:
    the on-time rate of the whole range is on-time / with-promise of the sums, not a mean of
    the periods' rates."""
    sums: dict[tuple[str, str], dict[str, float]] = defaultdict(
        lambda: {"shipments": 0, "on_time": 0, "late": 0, "with_promise": 0, "transit": 0.0}
    )
    names: dict[str, str] = {}
    for r in rows:
        carrier = r.get("carrier_id") or "unknown"
        names[carrier] = r.get("carrier_name") or carrier
        s = sums[(carrier, r.get("service_level") or "unknown")]
        for key in ("shipments", "on_time", "late", "with_promise"):
            s[key] += r[key]
        s["transit"] += (r["avg_transit_hours"] or 0.0) * r["shipments"]
    out = []
    for (carrier, level), s in sorted(sums.items()):
        out.append(
            {
                "carrier": names[carrier],
                "carrier_id": carrier,
                "service level": level,
                "delivered": int(s["shipments"]),
                "on time": int(s["on_time"]),
                "late": int(s["late"]),
                "on-time %": round(100 * s["on_time"] / s["with_promise"], 1)
                if s["with_promise"]
                else None,
                "avg transit h": round(s["transit"] / s["shipments"], 1)
                if s["shipments"]
                else None,
            }
        )
    return out


def on_time_chart(table: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    levels = sorted({r["service level"] for r in table})
    for level in levels:
        rows = [r for r in table if r["service level"] == level]
        fig.add_bar(
            x=[r["carrier"] for r in rows],
            y=[r["on-time %"] for r in rows],
            name=level,
            customdata=[[r["delivered"], r["late"]] for r in rows],
            hovertemplate="%{x}: %{y:.1f} % on time (%{customdata[0]} delivered, "
            "%{customdata[1]} late)",
        )
    fig.update_layout(
        barmode="group",
        height=380,
        margin={"t": 30, "b": 10},
        yaxis={"title": "on time %", "range": [0, 105]},
        legend={"title": "service level", "orientation": "h"},
    )
    return fig


def trend_chart(rows: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    by_carrier: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_carrier[r.get("carrier_name") or r.get("carrier_id") or "unknown"].append(r)
    for carrier, items in sorted(by_carrier.items()):
        fig.add_scatter(
            x=[r["period"] for r in items],
            y=[r["on_time_pct"] for r in items],
            name=carrier,
            mode="lines+markers",
            customdata=[[r["shipments"]] for r in items],
            hovertemplate="%{x}: %{y:.1f} % of %{customdata[0]} deliveries",
        )
    fig.update_layout(
        height=320,
        margin={"t": 30, "b": 10},
        yaxis={"title": "on time %", "range": [0, 105]},
        legend={"orientation": "h"},
    )
    return fig


def temperature_chart(trace: dict[str, Any]) -> go.Figure:
    """The readings (mean per point, with its min-max range) against the spec band."""
    points = trace["points"]
    x = [p["at"] for p in points]
    fig = go.Figure()
    if trace["spec_min"] is not None and trace["spec_max"] is not None:
        fig.add_hrect(
            y0=trace["spec_min"],
            y1=trace["spec_max"],
            fillcolor=BAND_COLOUR,
            line_width=0,
            annotation_text=f"spec {trace['spec_min']:g} to {trace['spec_max']:g} C",
            annotation_position="top left",
        )
    fig.add_scatter(
        x=x,
        y=[p["max_celsius"] for p in points],
        mode="lines",
        line={"width": 0},
        showlegend=False,
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=x,
        y=[p["min_celsius"] for p in points],
        mode="lines",
        line={"width": 0},
        fill="tonexty",
        fillcolor="rgba(21, 101, 192, 0.2)",
        name="min-max",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=x,
        y=[p["celsius"] for p in points],
        mode="lines+markers",
        name="reading C",
        line={"color": "#1565c0"},
        marker={
            "size": 5,
            "color": ["#c62828" if p["out_of_spec"] else "#1565c0" for p in points],
        },
    )
    fig.update_layout(
        height=360,
        margin={"t": 30, "b": 10},
        yaxis={"title": "Celsius"},
        legend={"orientation": "h"},
    )
    return fig


def carrier_filter(ctx: Any, filters: Filters) -> Filters:
    carriers = {
        c["carrier_id"]: c["carrier_name"] or c["carrier_id"] for c in logistics.carriers(ctx)
    }
    picked = st.sidebar.selectbox(
        "Carrier",
        ["All", *carriers],
        format_func=lambda c: c if c == "All" else f"{carriers[c]} ({c})",
        key="logistics_carrier",
    )
    return dataclasses.replace(filters, carrier_id=None if picked == "All" else picked)


def main() -> None:
    st.title("Logistics and cold chain")
    ctx = common.context()
    common.freshness(ctx)
    filters = carrier_filter(ctx, common.filters(ctx))
    st.caption(
        "Dates apply to delivery (on-time) and to creation (excursions); a site filter keeps "
        "shipments leaving that plant, a pharmacy filter shipments to or from it."
    )

    performance = logistics.delivery_performance(ctx, filters, ("carrier", "service_level"))
    table = by_carrier_and_service(performance["items"])
    delivered = sum(r["delivered"] for r in table)
    on_time = sum(r["on time"] for r in table)
    late = sum(r["late"] for r in table)
    cols = st.columns(4)
    cols[0].metric("Delivered", delivered)
    cols[1].metric(
        "On time", f"{100 * on_time / (on_time + late):.1f} %" if on_time + late else "n/a"
    )
    cols[2].metric("Late", late)
    transit = [r["avg transit h"] * r["delivered"] for r in table if r["avg transit h"] is not None]
    cols[3].metric("Avg transit", f"{sum(transit) / delivered:.1f} h" if delivered else "n/a")

    st.subheader("On time by carrier and service level")
    if table:
        st.plotly_chart(on_time_chart(table), key="on_time")
        daily = logistics.delivery_performance(ctx, filters, ("carrier",), period="day")
        st.plotly_chart(trend_chart(daily["items"]), key="on_time_trend")
        st.dataframe(table, hide_index=True)
    else:
        st.info("No shipment was delivered in the chosen period.")

    st.subheader("Temperature excursions")
    found = logistics.excursions(ctx, filters, Page(limit=200))
    excursions = found["items"]
    if excursions:
        st.dataframe(
            [
                {
                    "shipment": e["shipment_id"],
                    "minutes out of range": e["excursion_minutes"],
                    "carrier": e["carrier_id"],
                    "service level": e["service_level"],
                    "from": e["origin_facility_id"],
                    "to": e["destination_facility_id"] or e["destination_type"],
                    "min C": e["min_celsius"],
                    "max C": e["max_celsius"],
                    "in spec %": e["time_in_spec_pct"],
                    "created (UTC)": e["created_at"],
                    "status": e["current_status"],
                }
                for e in excursions
            ],
            hide_index=True,
        )
        if found["next_cursor"]:
            st.caption("The 200 longest excursions are listed.")
    else:
        st.success("No cold-chain shipment left its band in the chosen period.")
    live = logistics.live_excursions(ctx, filters, limit=50)
    if live["running"]:
        now = [s for s in live["items"] if s["in_excursion"]]
        clock = live["clock"]
        st.caption(
            f"Speed layer: {len(now)} shipment(s) out of range now, {len(live['items'])} with "
            f"time out of range (live clock {clock:%Y-%m-%d %H:%M} UTC)."
            if clock
            else "Speed layer: no data yet."
        )
        if now:
            st.dataframe(now, hide_index=True)

    st.subheader("Temperature trace")
    choices = [e["shipment_id"] for e in excursions]
    typed = st.text_input(
        "Shipment id",
        value=choices[0] if choices else "",
        key="logistics_shipment",
        help="Any shipment; the excursions above are a good place to start.",
    ).strip()
    if typed:
        trace = logistics.temperature_trace(ctx, typed) if len(typed) <= 64 else None
        if trace is None:
            st.warning(f"No shipment {typed} in the warehouse.")
        elif not trace["points"]:
            st.info(f"{typed} has no logger readings (cold chain: {trace['cold_chain']}).")
        else:
            st.plotly_chart(temperature_chart(trace), key="temperature")
            st.caption(
                f"{trace['readings']} readings"
                + (
                    f", shown as {len(trace['points'])} points (min-max kept)"
                    if trace["downsampled"]
                    else ""
                )
                + f"; {trace['excursion_minutes'] or 0:g} minutes out of range; carrier "
                f"{trace['carrier_id']}."
            )


main()
