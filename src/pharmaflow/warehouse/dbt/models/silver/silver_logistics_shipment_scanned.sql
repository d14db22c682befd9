{{ config(
    alias='logistics_shipment_scanned',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.logistics_shipment_scanned: one row per distinct `logistics.shipment.scanned` event.
  A carrier scan of a shipment (PICKED_UP, IN_TRANSIT, AT_FACILITY, OUT_FOR_DELIVERY).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('status', 'string'),
    ('facility_id', 'string')
] -%}

{{ pf_silver_select('logistics.shipment.scanned', payload_columns) }}
