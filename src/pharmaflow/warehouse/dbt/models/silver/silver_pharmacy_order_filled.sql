{{ config(
    alias='pharmacy_order_filled',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.pharmacy_order_filled: one row per distinct `pharmacy.order.filled` event.
  The pharmacist filled the order; the lot dispensed links the order to its batch.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string'),
    ('ndc', 'string'),
    ('lot_number', 'string'),
    ('quantity', 'int'),
    ('pharmacist_id', 'string')
] -%}

{{ pf_silver_select('pharmacy.order.filled', payload_columns) }}
