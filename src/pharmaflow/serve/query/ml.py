"""The models' answers: shipment delay risk, demand forecasts, price elasticities, and which
model version produced them.

Everything is read from the gold score tables `pharmaflow score` writes (macros/ml_scores.sql:
empty until the first scoring, so these answers are empty lists rather than errors before
then), joined to gold facts for what a user filters and reads by. Each row carries the model
version that made it.
"""

from __future__ import annotations

from typing import Any

from pharmaflow.serve.query.base import Filters, Page, QueryContext

SCORE_TABLES = (
    "ml_shipment_delay_scores",
    "ml_demand_forecast",
    "ml_price_elasticity",
    "ml_survey_sentiment",
)
# the probability as served; a threshold compares this, so no row shows below it
SHOWN_PROBABILITY = "round(cast(s.delay_probability as double), 4)"
# Open shipments first by risk: the ones to act on before they are late.
DELAY_RISK_SQL = f"""
select s.shipment_id, s.created_at, s.carrier_id, s.service_level,
       f.origin_facility_id, f.destination_type, f.current_status,
       f.promised_delivery_time, f.delivered_at,
       {SHOWN_PROBABILITY} as delay_probability, s.predicted_late,
       s.model_version,
       -s.delay_probability as sort_risk
from gold.ml_shipment_delay_scores as s
left join gold.fact_shipment as f on f.shipment_id = s.shipment_id
where {{risk}}{{where}}
"""
FORECAST_SQL = """
select target_date, horizon_days, round(sum(forecast_units), 2) as forecast_units,
       count(*) as series, min(origin_date) as origin_date, max(model_version) as model_version
from gold.ml_demand_forecast
where true{where}
group by target_date, horizon_days
order by target_date
limit 400
"""
ELASTICITY_SQL = """
select e.ndc, p.product_name, round(cast(e.elasticity as double), 4) as elasticity,
       round(cast(e.ci_low as double), 4) as ci_low, round(cast(e.ci_high as double), 4) as ci_high,
       e.method, e.model_version
from gold.ml_price_elasticity as e
left join gold.dim_product as p on p.ndc = e.ndc and p.is_current
order by e.ndc
"""
MODELS_SQL = " union all ".join(
    f"select '{table}' as scores_table, model_name, model_version, count(*) as rows, "
    f"max(scored_at) as scored_at from gold.{table} group by model_name, model_version"
    for table in SCORE_TABLES
)


def delay_risk(
    ctx: QueryContext,
    filters: Filters,
    page: Page,
    min_probability: float | None = None,
    open_only: bool = True,
) -> dict[str, Any]:
    """Scored shipments at or above `min_probability` of arriving late (as shown: rounded to 4
    places), or by default the ones the model predicts late (at or above its own threshold,
    in its card), riskiest first (keyset pages on (probability, shipment_id)); `open_only`:
    not delivered yet."""
    where, params = filters.where(time="s.created_at", carrier="s.carrier_id")
    if open_only:
        where += " and f.delivered_at is null"
    if min_probability is None:
        risk, args = "s.predicted_late", params
    else:
        risk, args = f"{SHOWN_PROBABILITY} >= ?", [min_probability, *params]
    with ctx.reading() as q:
        found = q.page(
            f"ml.delay_risk:{risk}:{where}",
            DELAY_RISK_SQL.format(risk=risk, where=where),
            args,
            ("sort_risk", "shipment_id"),
            page,
        )
        as_of = q.info.built_at
    items = [{k: v for k, v in row.items() if k != "sort_risk"} for row in found["items"]]
    return {"items": items, "next_cursor": found["next_cursor"], "as_of": as_of}


def demand_forecast(ctx: QueryContext, filters: Filters, ndc: str | None = None) -> dict[str, Any]:
    """Forecast units per target day (summed over the pharmacies and products the filters
    keep), with the horizon it was forecast at."""
    where, params = filters.where(day="target_date", pharmacy="pharmacy_id")
    if ndc is not None:
        where += " and ndc = ?"
        params.append(ndc)
    with ctx.reading() as q:
        items = q.rows(f"ml.forecast:{where}", FORECAST_SQL.format(where=where), params)
        as_of = q.info.built_at
    return {"items": items, "as_of": as_of}


def elasticities(ctx: QueryContext) -> dict[str, Any]:
    """Per product: the estimated price elasticity with its 95% interval."""
    with ctx.reading() as q:
        return {"items": q.rows("ml.elasticity", ELASTICITY_SQL), "as_of": q.info.built_at}


def models(ctx: QueryContext) -> dict[str, Any]:
    """Which model version wrote each score table, how many rows, and when."""
    with ctx.reading() as q:
        items = q.rows("ml.models", f"select * from ({MODELS_SQL}) order by scores_table")
        return {"items": items, "as_of": q.info.built_at}
