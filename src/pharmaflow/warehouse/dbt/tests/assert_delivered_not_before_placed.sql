-- Structural check: no order shows a delivery before its placement (event time). A delivery
-- timestamped before the placement is a valid event that gold sets aside (gold._rejected, rule
-- delivered_before_placed; macros/gold_rules.sql), so this returning a row is a bug in gold.
select order_id, placed_at, delivered_at, last_delivered_at
from {{ ref('fact_order_lifecycle') }}
where delivered_at < placed_at
   or last_delivered_at < placed_at
