{{ config(
    alias='manufacturing_deviation_closed',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.manufacturing_deviation_closed: one row per distinct `manufacturing.deviation.closed` event.
  A quality deviation was closed, optionally with a CAPA (resolution scrubbed by ingest).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('deviation_id', 'string'),
    ('batch_id', 'string'),
    ('capa_id', 'string'),
    ('resolution', 'string')
] -%}

{{ pf_silver_select('manufacturing.deviation.closed', payload_columns) }}
