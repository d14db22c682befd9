{#
  gold.dim_payer: one row per payer (insurer / PBM), from the `payers` reference seed.
#}

with payers as (
    select * from {{ ref('payers') }}
)

select
    payer_id,
    name as payer_name,
    payer_type
from payers
