{{ config(
    alias='manufacturing_deviation_opened',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.manufacturing_deviation_opened: one row per distinct `manufacturing.deviation.opened` event.
  A quality deviation was opened against a batch (description scrubbed by ingest).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('deviation_id', 'string'),
    ('batch_id', 'string'),
    ('severity', 'string'),
    ('category', 'string'),
    ('description', 'string')
] -%}

{{ pf_silver_select('manufacturing.deviation.opened', payload_columns) }}
