{{ config(alias='logistics_temperature_reading') }}
{#
  silver.logistics_temperature_reading: one row per distinct `logistics.temperature.reading` event.
  A cold-chain data-logger reading in a shipment, with its spec limits.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('logger_id', 'string'),
    ('celsius', 'double'),
    ('spec_min', 'double'),
    ('spec_max', 'double')
] -%}

with bronze_events as (
    select * from {{ bronze('logistics.temperature.reading') }} as bronze_rows
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
