{{ config(alias='pharmacy_order_filled') }}
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
