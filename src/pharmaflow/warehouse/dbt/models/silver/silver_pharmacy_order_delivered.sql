{{ config(alias='pharmacy_order_delivered') }}
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
