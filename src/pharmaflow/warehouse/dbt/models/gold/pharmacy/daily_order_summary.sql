{#
  gold.daily_order_summary: one row per UTC calendar day of placed_at (order_date).

  A cohort view: the orders placed that day and how many of them have been approved, rejected,
  sent to prior authorisation, filled, shipped, delivered or cancelled so far (insurance counts
  use the order's latest insurance answer). avg/p50 hours_to_deliver over the delivered ones.
  Orders whose placed event has not arrived (placed_at null) are not in any day.
  Per pharmacy: gold.daily_pharmacy_order_summary.
#}

with orders as (
    select * from {{ ref('fact_order_lifecycle') }}
    where placed_at is not null
)

select
    cast(placed_at as date) as order_date,
    {{ pf_order_summary_metrics() }}
from orders
group by cast(placed_at as date)
