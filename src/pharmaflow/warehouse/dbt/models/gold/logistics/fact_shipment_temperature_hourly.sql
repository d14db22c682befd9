{#
  gold.fact_shipment_temperature_hourly: one row per (shipment_id, reading_hour): the cold-chain
  data-logger readings of a shipment summarised per UTC hour of their event time.

  Business rules:
    * Every reading counts (all loggers of the shipment), deduplicated by event_id in silver.
    * A reading is out of spec when celsius < spec_min or celsius > spec_max (the spec carried
      by the reading itself).
    * min / avg / max celsius: readings taken as decimals of 2 places (as the loggers report),
      avg = exact sum / count, so it does not depend on summation order; decimal(6,2).
    * in_spec_pct = 100 * in-spec readings / readings, decimal(6,2).
    * Hours without any reading have no row.

  Incremental (macros/incremental.sql): unique_key is shipment_id, so every hour of a shipment
  touched by a newly ingested reading is recomputed (a late reading can change an hour that was
  already built); last_ingest_time is the newest ingest_time among the hour's readings.
#}

{#- BigQuery only (ignored elsewhere): day partitions of reading_hour (time-window queries and
    the incremental delete+insert read recent days); clustered by shipment for per-shipment plots. -#}
{{ config(
    materialized='incremental',
    unique_key='shipment_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('reading_hour'),
    cluster_by=pf_bq_cluster(['shipment_id']),
) }}

with changed_shipments as (
    {{ pf_changed_keys('shipment_id', [
        pf_new_keys('silver_logistics_temperature_reading', 'shipment_id', 'shipment_id'),
    ]) }}
),

readings as (
    select
        shipment_id,
        {{ dbt.date_trunc('hour', 'event_time') }} as reading_hour,
        {{ pf_measurement('celsius') }} as celsius,
        celsius < spec_min or celsius > spec_max as is_out_of_spec,
        ingest_time
    from {{ ref('silver_logistics_temperature_reading') }}
    where {{ pf_key_changed('shipment_id', 'changed_shipments') }}
),

hourly as (
    select
        shipment_id,
        reading_hour,
        count(*) as readings,
        min(celsius) as min_celsius,
        {{ pf_exact_avg('celsius', 'decimal(6,2)') }} as avg_celsius,
        max(celsius) as max_celsius,
        {{ pf_count_if('is_out_of_spec') }} as out_of_spec_readings,
        {{ pf_count_if('not is_out_of_spec') }} as in_spec_readings,
        max(ingest_time) as last_ingest_time
    from readings
    group by shipment_id, reading_hour
)

select
    shipment_id,
    cast(reading_hour as {{ dbt.type_timestamp() }}) as reading_hour,
    readings,
    min_celsius,
    avg_celsius,
    max_celsius,
    out_of_spec_readings,
    {{ pf_safe_ratio('100 * in_spec_readings', 'readings', 'decimal(6,2)') }} as in_spec_pct,
    last_ingest_time
from hourly
