{{ config(
    alias='manufacturing_sensor_reading',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.manufacturing_sensor_reading: one row per distinct `manufacturing.sensor.reading` event.
  An equipment sensor reading taken during a batch, with its spec limits.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('sensor_id', 'string'),
    ('batch_id', 'string'),
    ('equipment_id', 'string'),
    ('sensor_type', 'string'),
    ('value', 'double'),
    ('unit', 'string'),
    ('spec_min', 'double'),
    ('spec_max', 'double')
] -%}

{{ pf_silver_select('manufacturing.sensor.reading', payload_columns) }}
