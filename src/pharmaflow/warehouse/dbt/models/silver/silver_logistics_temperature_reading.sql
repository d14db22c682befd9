{{ config(
    alias='logistics_temperature_reading',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.logistics_temperature_reading: one row per distinct `logistics.temperature.reading` event.
  A cold-chain data-logger reading in a shipment, with its spec limits.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('logger_id', 'string'),
    ('celsius', 'double'),
    ('spec_min', 'double'),
    ('spec_max', 'double')
] -%}

{{ pf_silver_select('logistics.temperature.reading', payload_columns) }}
