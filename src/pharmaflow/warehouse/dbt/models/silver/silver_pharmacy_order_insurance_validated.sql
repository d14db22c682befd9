{{ config(alias='pharmacy_order_insurance_validated') }}
{#
  silver.pharmacy_order_insurance_validated: one row per distinct `pharmacy.order.insurance_validated` event.
  The payer answered an order's claim: APPROVED, REJECTED or PRIOR_AUTH_REQUIRED.
  An order can have several (prior auth first, approval later).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string'),
    ('status', 'string'),
    ('copay_amount', 'decimal'),
    ('reject_code', 'string')
] -%}

{{ pf_silver_select('pharmacy.order.insurance_validated', payload_columns) }}
