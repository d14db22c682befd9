{{ config(
    alias='manufacturing_batch_status',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.manufacturing_batch_status: one row per distinct `manufacturing.batch.status` event.
  A manufacturing batch changed status (QUEUED, IN_PROGRESS, COMPLETED, FAILED, ON_HOLD).
  actual_yield_kg is only set on COMPLETED.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('batch_id', 'string'),
    ('lot_number', 'string'),
    ('ndc', 'string'),
    ('site_id', 'string'),
    ('equipment_id', 'string'),
    ('operator_id', 'string'),
    ('status', 'string'),
    ('batch_size_kg', 'double'),
    ('actual_yield_kg', 'double')
] -%}

{{ pf_silver_select('manufacturing.batch.status', payload_columns) }}
