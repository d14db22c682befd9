{{ config(alias='logistics_shipment_delivered') }}
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
