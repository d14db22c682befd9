{#
  gold.fact_sales_daily_local: one row per (business_date, pharmacy_id, ndc): the point-of-sale
  sales of a product at a pharmacy on the pharmacy's LOCAL business day, beside
  gold.fact_sales_daily's UTC day.

  Business rules (otherwise those of fact_sales_daily):
    * business_date: the calendar day of the sale's event time in the pharmacy's IANA time zone
      (reference facilities.timezone, the version valid at the sale; UTC when the reference does
      not know the pharmacy or its zone). Daylight saving applies as of the sale.
    * pharmacy_timezone: that zone (the latest one used, should it change within a day).
    * pharmacy_sk / pharmacy_region: the pharmacy's version valid at 00:00 UTC of business_date
      (as fact_sales_daily at the start of sale_date).
    * sales, units, revenue, promo_*: as fact_sales_daily, so the totals over all days are the
      same in both tables.

  Incremental (macros/incremental.sql): the (business day, pharmacy, product) keys of newly
  ingested sales are recomputed from all their sales (delete+insert on the composite key).
#}

{{ config(
    materialized='incremental',
    unique_key=['business_date', 'pharmacy_id', 'ndc'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('business_date', 'date'),
    cluster_by=pf_bq_cluster(['pharmacy_id', 'ndc']),
) }}

{%- set local_sales -%}
    select
        sale.*,
        coalesce(pharmacy.timezone, 'UTC') as pharmacy_timezone,
        {{ pf_local_date('sale.event_time', "coalesce(pharmacy.timezone, 'UTC')") }} as business_date
    from {{ ref('silver_sales_sale_completed') }} as sale
    {{ pf_join_version('dim_facility', 'pharmacy', 'facility_id', 'sale.pharmacy_id', 'sale.event_time') }}
    where sale.pharmacy_id is not null
      and sale.ndc is not null
{%- endset %}

{%- set new_sale_keys -%}
    select distinct business_date, pharmacy_id, ndc
    from ({{ local_sales }}) as sale
    where sale.ingest_time >= {{ pf_incremental_since() }}
{%- endset %}

with changed_keys as (
    {{ pf_changed_keys('business_date', [new_sale_keys]) }}
),

sales as (
    select *
    from ({{ local_sales }}) as sale
    where {{ pf_key_changed(['sale.business_date', 'sale.pharmacy_id', 'sale.ndc'],
                            'changed_keys', ['business_date', 'pharmacy_id', 'ndc']) }}
),

daily as (
    select
        business_date,
        pharmacy_id,
        ndc,
        max(pharmacy_timezone) as pharmacy_timezone,
        {{ pf_sales_measures() }}
    from sales
    group by business_date, pharmacy_id, ndc
)

select
    daily.business_date,
    daily.pharmacy_id,
    daily.ndc,
    daily.pharmacy_timezone,
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
                   'cast(daily.business_date as ' ~ dbt.type_timestamp() ~ ')') }}
