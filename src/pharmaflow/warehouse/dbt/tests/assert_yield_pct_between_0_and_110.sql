-- Business rule: a batch's yield is between 0 % and 110 % of its planned size (above 110 % is a
-- data error: wrong unit, wrong batch size). Returns the offending batches.
select batch_id, batch_size_kg, actual_yield_kg, yield_pct
from {{ ref('fact_batch_production') }}
where yield_pct < 0 or yield_pct > 110
