{{ config(
    alias='logistics_shipment_exception',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.logistics_shipment_exception: one row per distinct `logistics.shipment.exception` event.
  A carrier exception on a shipment (DELAY, DAMAGED, LOST, TEMP_EXCURSION).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('exception_code', 'string'),
    ('detail', 'string')
] -%}

{{ pf_silver_select('logistics.shipment.exception', payload_columns) }}
