{#
  SCD2 dims: per natural key, versions do not overlap and leave no gap (each valid_to is the
  next version's valid_from), the last one is open-ended, and exactly the last one is current.
#}
{%- set dims = [('dim_facility', 'facility_id'), ('dim_product', 'ndc'),
                ('dim_carrier', 'carrier_id'), ('dim_payer', 'payer_id')] %}
{%- for dim, key in dims %}
select '{{ dim }}' as dim, {{ key }} as natural_key, valid_from, valid_to, is_current
from (
    select
        {{ key }},
        valid_from,
        valid_to,
        is_current,
        lead(valid_from) over (partition by {{ key }} order by valid_from) as next_valid_from
    from {{ ref(dim) }}
) versions
where (next_valid_from is not null and (valid_to <> next_valid_from or is_current))
   or (next_valid_from is null and (valid_to <> {{ pf_max_timestamp() }} or not is_current))
{{ 'union all' if not loop.last }}
{%- endfor %}
