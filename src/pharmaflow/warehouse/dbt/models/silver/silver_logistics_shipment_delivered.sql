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

with bronze_events as (
    select * from {{ bronze('logistics.shipment.delivered') }} as bronze_rows
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
