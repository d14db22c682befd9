-- Business rule: an order is never filled before it was placed (event time).
select order_id, placed_at, filled_at
from {{ ref('fact_order_lifecycle') }}
where filled_at < placed_at
