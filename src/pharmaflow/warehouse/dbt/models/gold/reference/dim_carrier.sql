{#
  gold.dim_carrier: one row per VERSION of a carrier, SCD type 2 from the snapshot of the
  `carriers` seed (macros/history.sql); facts join the version valid at their event time.
#}

with versions as (
    {{ pf_scd2_versions('carriers_history', 'carrier_id') }}
)

select
    {{ pf_surrogate_key(['carrier_id', 'dbt_valid_from']) }} as carrier_sk,
    carrier_id,
    name as carrier_name,
    carrier_type,
    cold_chain_capable,
    version,
    {{ pf_scd2_validity() }}
from versions
