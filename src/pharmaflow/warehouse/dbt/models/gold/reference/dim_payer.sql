{#
  gold.dim_payer: one row per VERSION of a payer (insurer / PBM), SCD type 2 from the snapshot
  of the `payers` seed (macros/history.sql); facts join the version valid at their event time.
#}

with versions as (
    {{ pf_scd2_versions('payers_history', 'payer_id') }}
)

select
    {{ pf_surrogate_key(['payer_id', 'dbt_valid_from']) }} as payer_sk,
    payer_id,
    name as payer_name,
    payer_type,
    version,
    {{ pf_scd2_validity() }}
from versions
