{#
  gold.daily_pharmacy_order_summary: one row per (UTC calendar day of placed_at, pharmacy_id).
  Same cohort metrics as gold.daily_order_summary; summing a stage count over pharmacies gives
  the daily total (medians do not add up: use daily_order_summary for the day's p50).
#}

with orders as (
    select * from {{ ref('fact_order_lifecycle') }}
    where placed_at is not null
)

select
    cast(placed_at as date) as order_date,
    pharmacy_id,
    {{ pf_order_summary_metrics() }}
from orders
group by cast(placed_at as date), pharmacy_id
