-- Structural check: a batch's yield shown in gold is between 0 % and 110 % of its planned size.
-- A larger yield (wrong unit, wrong batch size) is a valid event that gold sets aside
-- (gold._rejected, rule yield_above_110_pct; macros/gold_rules.sql: yield_pct is null then), and
-- the contract refuses negative yields; so this returning a row is a bug in gold.
select batch_id, batch_size_kg, actual_yield_kg, yield_pct
from {{ ref('fact_batch_production') }}
where yield_pct < 0 or yield_pct > 110
