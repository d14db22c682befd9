{#
  gold.dim_carrier: one row per carrier, from the `carriers` reference seed.
#}

with carriers as (
    select * from {{ ref('carriers') }}
)

select
    carrier_id,
    name as carrier_name,
    carrier_type,
    cold_chain_capable
from carriers
