"""Patient feedback: NPS over time, the rating distribution, and the scrubbed comments.

Everything is read from gold.fact_survey (one row per survey, its latest submission), whose
comments ingest already scrubbed of names, phone numbers and e-mails ([NAME], [PHONE],
[EMAIL]) before anything was stored: serving shows them as they are and never joins a
patient's details in. NPS is defined as gold.kpi_nps defines it: % promoters (9-10) minus
% detractors (0-6) of the surveys with an NPS answer, so the overall figure here over all
dates equals kpi_nps's ALL row.

Filters: dates on submitted_at, pharmacy on the surveyed order's pharmacy (surveys whose order
has not arrived have none, so a pharmacy filter leaves them out, as kpi_nps does).
"""

from __future__ import annotations

from typing import Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.query.base import Filters, Page, QueryContext

PERIODS = ("day", "week", "month")
CATEGORIES = ("PROMOTER", "PASSIVE", "DETRACTOR")
SENTIMENTS = ("POSITIVE", "NEUTRAL", "NEGATIVE")

# The NPS aggregates of a set of fact_survey rows, as kpi_nps computes them.
_NPS_COLUMNS = """count(*) as surveys, count(nps) as responses,
       count(*) filter (where nps >= 9) as promoters,
       count(*) filter (where nps between 7 and 8) as passives,
       count(*) filter (where nps <= 6) as detractors,
       round(100.0 * count(*) filter (where nps >= 9) / nullif(count(nps), 0), 2)
           as promoter_pct,
       round(100.0 * count(*) filter (where nps <= 6) / nullif(count(nps), 0), 2)
           as detractor_pct,
       round(100.0 * (count(*) filter (where nps >= 9) - count(*) filter (where nps <= 6))
             / nullif(count(nps), 0), 2) as nps,
       round(avg(rating), 2) as avg_rating"""
TREND_SQL = (
    f"select cast(date_trunc(?, submitted_at) as date) as period, {_NPS_COLUMNS} "
    "from gold.fact_survey where true{where} group by 1 order by 1 limit 5000"
)
OVERALL_SQL = f"select {_NPS_COLUMNS} from gold.fact_survey where true{{where}}"
RATINGS_SQL = """
select r.rating, count(s.survey_id) as surveys,
       round(100.0 * count(s.survey_id) / nullif(sum(count(s.survey_id)) over (), 0), 2)
           as share_pct
from range(1, 6) as r(rating)
left join gold.fact_survey s on s.rating = r.rating{where}
group by r.rating order by r.rating
"""
COMMENTS_SQL = (
    "select survey_id, submitted_at, rating, nps, nps_category, pharmacy_id, order_id, "
    "comment, sentiment_label, sentiment_score, -epoch_ms(submitted_at) as sort_newest "
    "from gold.fact_survey where comment is not null and trim(comment) <> ''{where}"
)


def _where(filters: Filters, table: str = "") -> tuple[str, list[Any]]:
    return filters.where(time=f"{table}submitted_at", pharmacy=f"{table}pharmacy_id")


def nps_trend(ctx: QueryContext, filters: Filters, period: str = "week") -> dict[str, Any]:
    """Per period of submitted_at: surveys, responses, promoters / passives / detractors, NPS
    and mean rating (gold.fact_survey), and the same over the whole filtered range."""
    if period not in PERIODS:
        raise PharmaflowError(f"period: {period!r} is not one of {', '.join(PERIODS)}")
    where, params = _where(filters)
    with ctx.reading() as q:
        trend = q.rows(f"feedback.trend:{where}", TREND_SQL.format(where=where), [period, *params])
        overall = q.one(f"feedback.overall:{where}", OVERALL_SQL.format(where=where), params)
        as_of = q.info.built_at
    return {"period": period, "items": trend, "overall": overall, "as_of": as_of}


def rating_distribution(ctx: QueryContext, filters: Filters) -> list[dict[str, Any]]:
    """Surveys per star rating 1-5 (every rating listed, zero included) and each one's share
    of the rated surveys (gold.fact_survey)."""
    where, params = _where(filters, "s.")
    with ctx.reading() as q:
        return q.rows(f"feedback.ratings:{where}", RATINGS_SQL.format(where=where), params)


def comments(
    ctx: QueryContext,
    filters: Filters,
    page: Page,
    category: str | None = None,
    sentiment: str | None = None,
) -> dict[str, Any]:
    """Survey comments as ingest stored them, scrubbed of PHI (gold.fact_survey), newest
    first, optionally of one NPS category and of one sentiment (as the champion sentiment
    model scored it: negative feedback without reading every comment); keyset pages on
    (submitted_at, survey_id)."""
    where, params = _where(filters)
    if category is not None:
        if category not in CATEGORIES:
            raise PharmaflowError(f"category: {category!r} is not one of {', '.join(CATEGORIES)}")
        where += " and nps_category = ?"
        params.append(category)
    if sentiment is not None:
        if sentiment not in SENTIMENTS:
            raise PharmaflowError(f"sentiment: {sentiment!r} is not one of {', '.join(SENTIMENTS)}")
        where += " and sentiment_label = ?"
        params.append(sentiment)
    with ctx.reading() as q:
        found = q.page(
            f"feedback.comments:{where}",
            COMMENTS_SQL.format(where=where),
            params,
            ("sort_newest", "survey_id"),
            page,
        )
        as_of = q.info.built_at
    items = [{k: v for k, v in row.items() if k != "sort_newest"} for row in found["items"]]
    return {"items": items, "next_cursor": found["next_cursor"], "as_of": as_of}
