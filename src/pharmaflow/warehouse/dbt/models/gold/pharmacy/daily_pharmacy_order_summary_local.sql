{#
  gold.daily_pharmacy_order_summary_local: one row per (business_date, pharmacy_id): the
  pharmacy's LOCAL business day, beside gold.daily_pharmacy_order_summary's UTC day.

  business_date = fact_order_lifecycle.placed_business_date: the calendar day of placed_at in
  the pharmacy's IANA time zone (reference facilities.timezone, the version valid at placed_at;
  UTC when unknown). An order placed at 22:30 in New York on 1 March is on 1 March here and on
  2 March (UTC) in the UTC summary. Same cohort metrics as the UTC summaries
  (macros/order_summary.sql); summing a stage count over business dates gives the pharmacy's
  total, as over UTC days.
#}

with orders as (
    select * from {{ ref('fact_order_lifecycle') }}
    where placed_at is not null
)

select
    placed_business_date as business_date,
    pharmacy_id,
    max(pharmacy_timezone) as pharmacy_timezone,
    {{ pf_order_summary_metrics() }}
from orders
group by placed_business_date, pharmacy_id
