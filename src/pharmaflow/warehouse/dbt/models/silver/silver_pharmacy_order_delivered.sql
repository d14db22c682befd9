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

with bronze_events as (
    select * from {{ bronze('pharmacy.order.delivered') }} as bronze_rows
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
