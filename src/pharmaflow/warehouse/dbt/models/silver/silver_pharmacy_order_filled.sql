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

with bronze_events as (
    select * from {{ bronze('pharmacy.order.filled') }} as bronze_rows
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
