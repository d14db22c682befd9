"""Compliance: quality deviations, how long their investigations take, and the CAPAs raised.

What a QA lead and an inspector look at (21 CFR 211.192: every unexplained discrepancy is
investigated and the investigation recorded): deviations still open, by severity and how long
they have been open; closed ones, by how long the investigation took; and the corrective and
preventive actions closures raised. From gold.fact_deviation (one row per deviation), the
batch's plant from gold.fact_batch_production, and the deviation events' free texts (scrubbed
of PHI by ingest) from silver.

Ages are counted to the warehouse's newest manufacturing event (not the wall clock): a
back-filled or replayed history reads as it did then, and on a live plant (events arriving
now) the two agree up to the build interval. Date filters: a deviation's opening for the
open-deviation views and the list, its closure for investigation times and CAPAs; the site
filter is the batch's plant.
"""

from __future__ import annotations

from typing import Any

from pharmaflow.serve.query.base import BadCursor, Filters, Page, QueryContext, SnapshotQuery

SEVERITIES = ("CRITICAL", "MAJOR", "MINOR")
AGE_BUCKETS = ("0-7 days", "7-30 days", "30-90 days", "90+ days")
DURATION_BUCKETS = ("<1 day", "1-3 days", "3-7 days", "7-14 days", "14-30 days", "30+ days")

# The newest manufacturing event time in gold: what ages count to.
AS_OF = (
    "(select max(t) from ("
    "select max(status_changed_at) as t from gold.fact_batch_production "
    "union all select max(opened_at) from gold.fact_deviation "
    "union all select max(closed_at) from gold.fact_deviation))"
)
# One row per deviation with its plant and age (what the aggregates read) ...
DEVIATION_CORE = (
    "select d.deviation_id, d.batch_id, b.site_id, coalesce(d.severity, 'UNKNOWN') as severity, "
    "d.category, d.opened_at, d.closed_at, d.is_open, d.investigation_days, d.capa_id, "
    "d.has_capa, "
    "case when d.is_open and d.opened_at is not null then "
    f"round((epoch({AS_OF}) - epoch(d.opened_at)) / 86400.0, 2) end as age_days "
    "from gold.fact_deviation as d "
    "left join gold.fact_batch_production as b on b.batch_id = d.batch_id"
)
# ... and with the texts of its first opened and latest closed events (what lists show).
DEVIATION_BASE = (
    f"select core.*, o.description, c.resolution from ({DEVIATION_CORE}) as core "
    "left join (select deviation_id, description from silver.manufacturing_deviation_opened "
    "qualify row_number() over (partition by deviation_id "
    "order by event_time, ingest_time, event_id) = 1) as o on o.deviation_id = core.deviation_id "
    "left join (select deviation_id, resolution from silver.manufacturing_deviation_closed "
    "qualify row_number() over (partition by deviation_id "
    "order by event_time desc, ingest_time desc, event_id desc) = 1) as c "
    "on c.deviation_id = core.deviation_id"
)
BATCH_DEVIATIONS_SQL = (
    f"select * from ({DEVIATION_BASE}) as dev where batch_id = ? "
    "order by opened_at nulls last, deviation_id limit 500"
)
DEVIATION_LIST_SQL = f"select * from ({DEVIATION_BASE}) as dev where true{{where}}"
BY_SEVERITY_SQL = (
    f"select severity, count(*) as deviations, count(*) filter (where is_open) as open, "
    "count(*) filter (where not is_open) as closed, "
    "max(age_days) as oldest_open_days "
    f"from ({DEVIATION_CORE}) as dev where true{{where}} group by severity "
    "order by severity limit 100"
)
OPEN_BY_AGE_SQL = (
    "select severity, case when age_days is null then 'unknown' "
    "when age_days < 7 then '0-7 days' when age_days < 30 then '7-30 days' "
    "when age_days < 90 then '30-90 days' else '90+ days' end as age_bucket, "
    "count(*) as open "
    f"from ({DEVIATION_CORE}) as dev where is_open{{where}} group by all "
    "order by severity, age_bucket limit 100"
)
AS_OF_SQL = f"select {AS_OF} as as_of"
INVESTIGATION_SQL = (
    "select case when grouping(severity) = 1 then 'ALL' else severity end as severity, "
    "count(*) as closed, round(avg(cast(investigation_days as double)), 2) as mean_days, "
    "round(median(cast(investigation_days as double)), 2) as p50_days, "
    "round(quantile_cont(cast(investigation_days as double), 0.9), 2) as p90_days, "
    "min(investigation_days) as min_days, max(investigation_days) as max_days "
    f"from ({DEVIATION_CORE}) as dev "
    "where not is_open and investigation_days is not null{where} "
    "group by grouping sets ((severity), ()) order by grouping(severity), severity limit 100"
)
INVESTIGATION_BUCKETS_SQL = (
    "select severity, case when investigation_days < 1 then '<1 day' "
    "when investigation_days < 3 then '1-3 days' when investigation_days < 7 then '3-7 days' "
    "when investigation_days < 14 then '7-14 days' "
    "when investigation_days < 30 then '14-30 days' else '30+ days' end as bucket, "
    "count(*) as deviations "
    f"from ({DEVIATION_CORE}) as dev "
    "where not is_open and investigation_days is not null{where} group by all "
    "order by severity, bucket limit 200"
)
CAPA_SUMMARY_SQL = (
    "select severity, count(*) as closed, count(*) filter (where has_capa) as with_capa, "
    "round(count(*) filter (where has_capa) / count(*), 4) as capa_rate "
    f"from ({DEVIATION_CORE}) as dev where not is_open{{where}} group by severity "
    "order by severity limit 100"
)
CAPAS_SQL = (
    "select capa_id, deviation_id, batch_id, site_id, severity, category, "
    "closed_at as raised_at, investigation_days, resolution "
    f"from ({DEVIATION_BASE}) as dev where has_capa{{where}} "
    "order by raised_at desc nulls last, capa_id, deviation_id limit 500"
)


def id_page(page: Page) -> Page:
    """`page`, refused (BadCursor, a 422) unless its cursor is a key of text ids: the plant
    lists are keyed on ids, and a decodable cursor holding a number or a list would otherwise
    reach DuckDB as a comparison of VARCHAR with another type (an error, not an answer)."""
    after = page.after()
    if after is not None and not all(isinstance(value, str) for value in after):
        raise BadCursor("cursor: not a cursor of this list")
    return page


def batch_deviations(q: SnapshotQuery, batch_id: str) -> list[dict[str, Any]]:
    """The deviations opened against one batch (gold.fact_deviation, silver deviation events),
    on an already pinned snapshot (a batch's detail reads them with its other parts)."""
    return q.rows("batch_deviations", BATCH_DEVIATIONS_SQL, [batch_id])


def _opened(filters: Filters) -> tuple[str, list[Any]]:
    return filters.where(time="opened_at", site="site_id")


def _closed(filters: Filters) -> tuple[str, list[Any]]:
    return filters.where(time="closed_at", site="site_id")


def _severity_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {s: i for i, s in enumerate(("ALL", *SEVERITIES))}
    return sorted(rows, key=lambda r: rank.get(r["severity"], len(rank)))


def open_deviations(ctx: QueryContext, filters: Filters) -> dict[str, Any]:
    """Deviations opened in the period at the site: per severity how many, how many are still
    open and the oldest open one's age; and the open ones per severity and age bucket (every
    known severity and bucket present, zeros included, for a stable chart), with ages counted
    to `as_of` (gold.fact_deviation, gold.fact_batch_production)."""
    where, params = _opened(filters)
    with ctx.reading() as q:
        as_of = (q.one("deviation_as_of", AS_OF_SQL) or {}).get("as_of")
        by_severity = q.rows(
            f"deviations_by_severity{where}", BY_SEVERITY_SQL.format(where=where), params
        )
        by_age = q.rows(f"open_by_age{where}", OPEN_BY_AGE_SQL.format(where=where), params)
    counts = {(r["severity"], r["age_bucket"]): r["open"] for r in by_age}
    severities = list(SEVERITIES) + sorted({r["severity"] for r in by_age} - set(SEVERITIES))
    buckets = list(AGE_BUCKETS) + (["unknown"] if any(b == "unknown" for _, b in counts) else [])
    grid = [
        {"severity": s, "age_bucket": b, "open": counts.get((s, b), 0)}
        for s in severities
        for b in buckets
    ]
    return {
        "as_of": as_of,
        "total": sum(r["deviations"] for r in by_severity),
        "open": sum(r["open"] for r in by_severity),
        "by_severity": _severity_order(by_severity),
        "by_age": grid,
    }


def deviations(
    ctx: QueryContext, filters: Filters, page: Page, open_only: bool = False
) -> dict[str, Any]:
    """Deviations opened in the period at the site (optionally only the open ones), in
    deviation_id order, a page at a time: severity, category, opened / closed, age, CAPA and
    the scrubbed description and resolution (gold.fact_deviation, silver deviation events)."""
    where, params = _opened(filters)
    if open_only:
        where += " and is_open"
    with ctx.reading() as q:
        return q.page(
            f"deviations{where}",
            DEVIATION_LIST_SQL.format(where=where),
            params,
            ["deviation_id"],
            id_page(page),
        )


def investigation_times(ctx: QueryContext, filters: Filters) -> dict[str, Any]:
    """Deviations closed in the period at the site: per severity (and ALL) how many, the mean,
    median (p50), p90, min and max investigation days, and how many took each duration bucket
    (gold.fact_deviation, gold.fact_batch_production)."""
    where, params = _closed(filters)
    with ctx.reading() as q:
        stats = q.rows(f"investigation{where}", INVESTIGATION_SQL.format(where=where), params)
        buckets = q.rows(
            f"investigation_buckets{where}", INVESTIGATION_BUCKETS_SQL.format(where=where), params
        )
    rank = {b: i for i, b in enumerate(DURATION_BUCKETS)}
    distribution = sorted(
        buckets,
        key=lambda r: (
            SEVERITIES.index(r["severity"]) if r["severity"] in SEVERITIES else len(SEVERITIES),
            rank[r["bucket"]],
        ),
    )
    return {"by_severity": _severity_order(stats), "distribution": distribution}


def capas(ctx: QueryContext, filters: Filters) -> dict[str, Any]:
    """Deviations closed in the period at the site: per severity how many closed, how many
    raised a CAPA and the share; and each CAPA raised (newest first: its deviation, batch,
    plant and the closure's resolution). No event closes a CAPA, so a CAPA's own status is not
    known here (gold.fact_deviation, silver.manufacturing_deviation_closed)."""
    where, params = _closed(filters)
    with ctx.reading() as q:
        summary = q.rows(f"capa_summary{where}", CAPA_SUMMARY_SQL.format(where=where), params)
        items = q.rows(f"capas{where}", CAPAS_SQL.format(where=where), params)
    return {"summary": _severity_order(summary), "items": items}
