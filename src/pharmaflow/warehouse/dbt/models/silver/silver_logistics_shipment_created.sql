{{ config(
    alias='logistics_shipment_created',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.logistics_shipment_created: one row per distinct `logistics.shipment.created` event.
  A shipment was created: plant -> DC, DC -> pharmacy, or pharmacy -> patient
  (destination_facility_id absent, order_id set). lot_numbers links it to batches.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('origin_facility_id', 'string'),
    ('destination_facility_id', 'string'),
    ('order_id', 'string'),
    ('carrier_id', 'string'),
    ('service_level', 'string'),
    ('promised_delivery_time', 'timestamp'),
    ('cold_chain', 'boolean'),
    ('lot_numbers', 'string_list')
] -%}

{{ pf_silver_select('logistics.shipment.created', payload_columns) }}
