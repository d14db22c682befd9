{{ config(
    alias='pharmacy_order_shipped',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.pharmacy_order_shipped: one row per distinct `pharmacy.order.shipped` event.
  The order left the pharmacy in a shipment.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string'),
    ('shipment_id', 'string'),
    ('carrier_id', 'string')
] -%}

{{ pf_silver_select('pharmacy.order.shipped', payload_columns) }}
