-- The daily summaries account for every placed order exactly once: their orders_placed totals
-- equal the number of orders with a placement in fact_order_lifecycle, and likewise for
-- delivered orders.
with fact as (
    select
        count(*) as orders_placed,
        count(delivered_at) as orders_delivered
    from {{ ref('fact_order_lifecycle') }}
    where placed_at is not null
),

daily as (
    select
        coalesce(sum(orders_placed), 0) as orders_placed,
        coalesce(sum(orders_delivered), 0) as orders_delivered
    from {{ ref('daily_order_summary') }}
),

per_pharmacy as (
    select
        coalesce(sum(orders_placed), 0) as orders_placed,
        coalesce(sum(orders_delivered), 0) as orders_delivered
    from {{ ref('daily_pharmacy_order_summary') }}
)

select
    fact.orders_placed as fact_orders_placed,
    daily.orders_placed as daily_orders_placed,
    per_pharmacy.orders_placed as pharmacy_orders_placed,
    fact.orders_delivered as fact_orders_delivered,
    daily.orders_delivered as daily_orders_delivered,
    per_pharmacy.orders_delivered as pharmacy_orders_delivered
from fact
cross join daily
cross join per_pharmacy
where fact.orders_placed <> daily.orders_placed
   or fact.orders_placed <> per_pharmacy.orders_placed
   or fact.orders_delivered <> daily.orders_delivered
   or fact.orders_delivered <> per_pharmacy.orders_delivered
