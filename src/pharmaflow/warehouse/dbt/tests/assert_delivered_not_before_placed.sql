-- Business rule: an order is never delivered before it was placed (event time).
select order_id, placed_at, delivered_at
from {{ ref('fact_order_lifecycle') }}
where delivered_at < placed_at
