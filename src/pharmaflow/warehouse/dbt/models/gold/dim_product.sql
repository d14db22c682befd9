{#
  gold.dim_product: one row per product (NDC), from the `products` reference seed.
  product_key is a stable hash of the NDC (it survives a reload of the seed).
#}

with products as (
    select * from {{ ref('products') }}
)

select
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
    therapeutic_class
from products
