{{ config(
    alias='logistics_shipment_delivered',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.logistics_shipment_delivered: one row per distinct `logistics.shipment.delivered` event.
  The carrier delivered the shipment.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string')
] -%}

{{ pf_silver_select('logistics.shipment.delivered', payload_columns) }}
