{{ config(
    alias='pharmacy_order_delivered',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.pharmacy_order_delivered: one row per distinct `pharmacy.order.delivered` event.
  The order reached the patient.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string')
] -%}

{{ pf_silver_select('pharmacy.order.delivered', payload_columns) }}
