"""Compliance: open deviations by severity and age, investigation times, CAPAs, the audit trail.

What a QA lead shows an inspector: which deviations are still open and for how long (ages to
the warehouse's newest manufacturing event), how long closed investigations took, which
closures raised a CAPA, and the audit trail of key changes and re-identifications (21 CFR
11.10(e)) with its hash chain verified. Deviations come from the query layer
(serve/query/compliance.py); the audit trail from the security store, read only (this page
never creates a store). Entries name API keys and pseudonymous patient keys, never a patient.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import streamlit as st

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import compliance
from pharmaflow.serve.query.base import Page

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.serve.security.audit import AuditTrail

SEVERITY_COLOURS = {"CRITICAL": "#b71c1c", "MAJOR": "#ef6c00", "MINOR": "#fbc02d"}
AUDIT_ROWS = 200


def age_chart(by_age: list[dict[str, Any]]) -> go.Figure:
    buckets = list(dict.fromkeys(r["age_bucket"] for r in by_age))
    return _by_severity(by_age, "age_bucket", "open", buckets, "open for", "open deviations")


def investigation_chart(distribution: list[dict[str, Any]]) -> go.Figure:
    buckets = [
        b for b in compliance.DURATION_BUCKETS if any(r["bucket"] == b for r in distribution)
    ]
    return _by_severity(
        distribution, "bucket", "deviations", buckets, "investigation took", "closed deviations"
    )


def _by_severity(
    rows: list[dict[str, Any]], bucket: str, value: str, buckets: list[str], x: str, y: str
) -> go.Figure:
    """Bars per bucket, stacked by severity (its colour), for both deviation charts."""
    fig = go.Figure()
    for severity in dict.fromkeys(r["severity"] for r in rows):
        counts = {r[bucket]: r[value] for r in rows if r["severity"] == severity}
        fig.add_bar(
            x=buckets,
            y=[counts.get(b, 0) for b in buckets],
            name=severity,
            marker_color=SEVERITY_COLOURS.get(severity, "#757575"),
        )
    fig.update_layout(
        barmode="stack",
        height=340,
        margin={"t": 30, "b": 10},
        xaxis={"title": x},
        yaxis={"title": y},
    )
    return fig


@st.cache_resource
def _audit_trail(url: str, _settings: Settings) -> AuditTrail:
    """The audit trail, opened once per store (read only: no store is created here)."""
    from pharmaflow.serve.security.store import open_security

    _keys, audit = open_security(_settings, create=False)  # both share audit's database
    return audit


def audit_section(settings: Settings) -> None:
    st.subheader("Audit trail")
    try:
        audit = _audit_trail(settings.security_store_url, settings)
        check = audit.verify()
        head = audit.head()
        after = max(0, (head.seq if head else 0) - AUDIT_ROWS)
        entries = audit.entries(after_seq=after, limit=AUDIT_ROWS)
    except PharmaflowError as exc:
        st.info(str(exc))
        return
    if check.ok:
        entries_text = "1 entry" if check.entries == 1 else f"{check.entries} entries"
        st.success(f"Hash chain verified: {entries_text}, none edited, deleted or moved.")
    else:
        st.error(f"Hash chain broken ({len(check.problems)} problems): {check.problems[0]}")
    if not entries:
        st.info("The audit trail is empty.")
        return
    st.caption(f"The newest {len(entries)} entries, newest first (UTC).")
    st.dataframe(
        [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "reason": e.reason,
                "details": json.dumps(e.details, sort_keys=True),
            }
            for e in reversed(entries)
        ],
        hide_index=True,
    )


def main() -> None:
    st.title("Compliance")
    ctx = common.context()
    common.freshness(ctx)
    filters = common.filters(ctx, pharmacy=False)

    opened = compliance.open_deviations(ctx, filters)
    investigation = compliance.investigation_times(ctx, filters)
    capas = compliance.capas(ctx, filters)
    overall = next((r for r in investigation["by_severity"] if r["severity"] == "ALL"), None)
    critical = sum(r["open"] for r in opened["by_severity"] if r["severity"] == "CRITICAL")
    cols = st.columns(4)
    cols[0].metric("Open deviations", opened["open"], help=f"of {opened['total']} opened")
    cols[1].metric("Open critical", critical)
    cols[2].metric(
        "Mean investigation",
        f"{overall['mean_days']:.1f} days" if overall and overall["mean_days"] else "n/a",
    )
    cols[3].metric("CAPAs raised", len(capas["items"]))

    st.subheader("Open deviations by severity and age")
    if opened["as_of"] is not None:
        st.caption(f"Ages to the newest manufacturing event, {opened['as_of']:%Y-%m-%d %H:%M} UTC")
    st.plotly_chart(age_chart(opened["by_age"]), key="open_by_age")
    if opened["by_severity"]:
        st.dataframe(opened["by_severity"], hide_index=True)
    open_list = compliance.deviations(ctx, filters, Page(limit=200), open_only=True)
    if open_list["items"]:
        st.dataframe(
            [
                {
                    "deviation": d["deviation_id"],
                    "batch": d["batch_id"],
                    "site": d["site_id"],
                    "severity": d["severity"],
                    "category": d["category"],
                    "opened (UTC)": d["opened_at"],
                    "open days": d["age_days"],
                    "description": d["description"],
                }
                for d in open_list["items"]
            ],
            hide_index=True,
        )

    st.subheader("Investigation time")
    if investigation["distribution"]:
        st.plotly_chart(investigation_chart(investigation["distribution"]), key="investigation")
        st.dataframe(investigation["by_severity"], hide_index=True)
    else:
        st.info("No deviation closed in the chosen period.")

    st.subheader("CAPAs")
    if capas["summary"]:
        st.dataframe(capas["summary"], hide_index=True)
    if capas["items"]:
        st.dataframe(capas["items"], hide_index=True)
    else:
        st.info("No closure in the chosen period raised a CAPA.")

    audit_section(ctx.settings)


main()
