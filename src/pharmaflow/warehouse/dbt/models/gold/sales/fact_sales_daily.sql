{#
  gold.fact_sales_daily: one row per (sale_date, pharmacy_id, ndc): the point-of-sale sales of a
  product at a pharmacy on a UTC calendar day.

  Business rules:
    * sale_date: the UTC date of the sale's event time (a late sale lands on the day it was
      made, not the day it arrived).
    * sales = completed sales (distinct events); units = sum of quantity; revenue = sum of
      quantity * unit_price, decimal(38,2) (exact, and wide enough for any valid sale: a 32-bit
      quantity times a decimal(12,2) price, summed).
    * promo_sales / promo_units: the sales (units) that carried a promotion_code;
      has_promotion = at least one of them did.
    * pharmacy_sk / pharmacy_region: the pharmacy's reference version valid at the start of the
      day (SCD2, macros/history.sql).
    * Sales without pharmacy_id or ndc (the contract requires both; ingest quarantines such
      events) are left out: they have no grain to land in.

  Incremental (macros/incremental.sql): the (day, pharmacy, product) keys of newly ingested
  sales are recomputed from all their sales (delete+insert on the composite key);
  last_ingest_time is the newest ingest_time among the key's sales.
#}

{#- BigQuery only (ignored elsewhere): day partitions of sale_date (sales are read by period);
    clustered by pharmacy and product, the usual filters. -#}
{{ config(
    materialized='incremental',
    unique_key=['sale_date', 'pharmacy_id', 'ndc'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('sale_date', 'date'),
    cluster_by=pf_bq_cluster(['pharmacy_id', 'ndc']),
) }}

{%- set new_sale_keys -%}
    select distinct
        cast(event_time as date) as sale_date,
        pharmacy_id,
        ndc
    from {{ ref('silver_sales_sale_completed') }}
    where ingest_time >= {{ pf_incremental_since() }}
{%- endset %}

with changed_keys as (
    {{ pf_changed_keys('sale_date', [new_sale_keys]) }}
),

sales as (
    select
        cast(sale.event_time as date) as sale_date,
        sale.pharmacy_id,
        sale.ndc,
        sale.quantity,
        sale.unit_price,
        sale.promotion_code,
        sale.ingest_time
    from {{ ref('silver_sales_sale_completed') }} as sale
    where sale.pharmacy_id is not null
      and sale.ndc is not null
      {#- qualified: the key expressions are compared inside a subquery over changed_keys #}
      and {{ pf_key_changed(['cast(sale.event_time as date)', 'sale.pharmacy_id', 'sale.ndc'],
                            'changed_keys', ['sale_date', 'pharmacy_id', 'ndc']) }}
),

daily as (
    select
        sale_date,
        pharmacy_id,
        ndc,
        {{ pf_sales_measures() }}
    from sales
    group by sale_date, pharmacy_id, ndc
)

select
    daily.sale_date,
    daily.pharmacy_id,
    daily.ndc,
    pharmacy.facility_sk as pharmacy_sk,
    pharmacy.region as pharmacy_region,
    daily.sales,
    daily.units,
    daily.revenue,
    daily.promo_sales,
    daily.promo_units,
    daily.promo_sales > 0 as has_promotion,
    daily.last_ingest_time
from daily
{{ pf_join_version('dim_facility', 'pharmacy', 'facility_id', 'daily.pharmacy_id',
                   'cast(daily.sale_date as ' ~ dbt.type_timestamp() ~ ')') }}
