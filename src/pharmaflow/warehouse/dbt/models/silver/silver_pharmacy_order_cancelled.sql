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

with bronze_events as (
    select * from {{ bronze('pharmacy.order.cancelled') }} as bronze_rows
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
