{{ config(alias='pharmacy_order_cancelled') }}
{#
  silver.pharmacy_order_cancelled: one row per distinct `pharmacy.order.cancelled` event.
  The order was cancelled.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string'),
    ('reason', 'string')
] -%}

{{ pf_silver_select('pharmacy.order.cancelled', payload_columns) }}
