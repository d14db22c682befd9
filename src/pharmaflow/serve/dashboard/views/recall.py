"""Recall: enter a lot or a batch, see everywhere it went, export the list.

For a recall coordinator: the batch and its QA outcome, the genealogy as a picture (a Sankey
from the batch through the lot, the facilities it left from and each leg's destination to the
pharmacies' patients), and the lists of shipments, orders and distinct patient keys, exported
as one CSV. The trace is the warehouse's own (`pharmaflow trace`, through
serve/query/recall.py). Patients appear only as pseudonymous keys: contacting them goes
through the privacy officer's logged re-identification, never this page. A trace is the whole
reach of the lot, so the sidebar's date and facility filters do not narrow it.
"""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import recall

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
KIND_COLOURS = {
    "batch": "#6a1b9a",
    "lot": "#1565c0",
    "facility": "#546e7a",
    "orders": "#c62828",
}


def genealogy_chart(graph: dict[str, list[dict[str, Any]]]) -> go.Figure:
    """The trace's nodes and weighted edges as a Sankey (flows left to right)."""
    index = {n["id"]: i for i, n in enumerate(graph["nodes"])}
    edges = graph["edges"]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [n["label"] for n in graph["nodes"]],
                "color": [KIND_COLOURS.get(n["kind"], "#9e9e9e") for n in graph["nodes"]],
                "pad": 12,
                "thickness": 14,
            },
            link={
                "source": [index[e["source"]] for e in edges],
                "target": [index[e["target"]] for e in edges],
                "value": [e["value"] for e in edges],
                "customdata": [
                    f"{e['kind']}: {e['shipments']} shipments, {e['orders']} orders" for e in edges
                ],
                "hovertemplate": "%{source.label} → %{target.label}<br>%{customdata}"
                "<extra></extra>",
            },
        )
    )
    fig.update_layout(height=max(420, 16 * len(graph["nodes"])), margin={"t": 20, "b": 10})
    return fig


def find(ctx: Any, key: str) -> dict[str, Any] | None:
    """A lot's trace, else a batch's (the one box takes either)."""
    return recall.lot_trace(ctx, key) or recall.batch_trace(ctx, key)


def main() -> None:
    st.title("Recall")
    ctx = common.context()
    common.freshness(ctx)
    suggested = recall.lots(ctx, limit=50)
    with st.expander("Lots in the warehouse (rejected or in review first)"):
        st.dataframe(suggested, hide_index=True)
    key = st.text_input(
        "Lot number or batch id",
        key="recall_key",
        placeholder=suggested[0]["lot_number"] if suggested else "L261101-2-01",
    ).strip()
    if not key:
        st.info("Enter a lot number (as printed on the pack) or a batch id to trace it.")
        return
    if not ID.match(key):
        st.error("A lot number or batch id is letters, digits and . _ : - (at most 64).")
        return
    found = find(ctx, key)
    if found is None:
        st.warning(f"No lot or batch {key} in the warehouse.")
        return

    counts = found["counts"]
    st.caption(
        f"Traced {found['query']} {found['key']}: lots {', '.join(found['lots']) or 'none'}."
    )
    cols = st.columns(5)
    cols[0].metric("Shipments", counts["shipments"])
    cols[1].metric("Orders", counts["orders"])
    cols[2].metric("Patients", counts["patients"])
    cols[3].metric("Units dispensed", counts["units_dispensed"])
    flags = sorted({b["quality_flag"] for b in found["batches"]})
    cols[4].metric("QA outcome", ", ".join(flags) if flags else "no batch in the data")
    if found["batches"]:
        st.dataframe(found["batches"], hide_index=True)

    st.subheader("Genealogy")
    if found["graph"]["edges"]:
        st.plotly_chart(genealogy_chart(found["graph"]), key="genealogy")
    else:
        st.info("The lot has not left its plant: no shipment or order links it.")

    st.download_button(
        "Download the trace (CSV)",
        recall.trace_csv(found),
        file_name=f"trace-{found['query']}-{found['key']}.csv",
        mime="text/csv",
        key="download",
    )
    st.subheader(f"Shipments ({counts['shipments']})")
    st.caption(
        "By leg: "
        + (", ".join(f"{leg} {n}" for leg, n in counts["shipments_by_leg"].items()) or "none")
    )
    st.dataframe(found["shipments"], hide_index=True, key="shipments")
    st.subheader(f"Orders ({counts['orders']})")
    st.dataframe(found["orders"], hide_index=True, key="orders")
    st.subheader(f"Patient keys ({counts['patients']})")
    st.caption("Pseudonymous: re-identification is the privacy officer's, logged, in the API.")
    st.dataframe(
        [{"patient_key": k} for k in found["patient_keys"]], hide_index=True, key="patients"
    )


main()
