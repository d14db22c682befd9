{#
  gold.dim_product: one row per VERSION of a product (NDC), SCD type 2 from the snapshot of the
  `products` seed (macros/history.sql): a price or storage change is a new version, valid from
  the seed row's updated_at. product_key is the durable key (hash of the NDC, the same for
  every version); product_sk identifies the version.
#}

with versions as (
    {{ pf_scd2_versions('products_history', 'ndc') }}
)

select
    {{ pf_surrogate_key(['ndc', 'dbt_valid_from']) }} as product_sk,
    {{ pf_surrogate_key(['ndc']) }} as product_key,
    ndc,
    -- the 11-digit NDC without dashes (5-4-2), as billing systems carry it
    replace(ndc, '-', '') as ndc_11,
    name as product_name,
    strength,
    dosage_form,
    storage,
    storage = 'COLD_CHAIN' as is_cold_chain,
    list_price,
    therapeutic_class,
    version,
    {{ pf_scd2_validity() }}
from versions
