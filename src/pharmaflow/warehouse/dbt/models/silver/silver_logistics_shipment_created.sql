{{ config(alias='logistics_shipment_created') }}
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
