-- Structural check: no order shows a fill before its placement (event time). A fill timestamped
-- before the placement is a valid event that gold sets aside (gold._rejected, rule
-- filled_before_placed; macros/gold_rules.sql), so this returning a row is a bug in gold.
select order_id, placed_at, filled_at
from {{ ref('fact_order_lifecycle') }}
where filled_at < placed_at
