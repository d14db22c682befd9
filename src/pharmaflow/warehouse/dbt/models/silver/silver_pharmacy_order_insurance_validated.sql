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

with bronze_events as (
    select * from {{ bronze('pharmacy.order.insurance_validated') }} as bronze_rows
),

deduped as (
    {{ pf_dedupe_events('bronze_events') }}
),

parsed as (
    select
        deduped.*,
        {{ pf_json_parse('payload', payload_columns) }} as p
    from deduped
)

select
    {{ pf_envelope_columns() }},
    {{- pf_payload_columns('p', payload_columns) }},
    {{ pf_provenance_columns() }}
from parsed
