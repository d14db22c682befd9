{{ config(alias='logistics_shipment_scanned') }}
{#
  silver.logistics_shipment_scanned: one row per distinct `logistics.shipment.scanned` event.
  A carrier scan of a shipment (PICKED_UP, IN_TRANSIT, AT_FACILITY, OUT_FOR_DELIVERY).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('status', 'string'),
    ('facility_id', 'string')
] -%}

with bronze_events as (
    select * from {{ bronze('logistics.shipment.scanned') }} as bronze_rows
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
