{{ config(alias='manufacturing_sensor_reading') }}
{#
  silver.manufacturing_sensor_reading: one row per distinct `manufacturing.sensor.reading` event.
  An equipment sensor reading taken during a batch, with its spec limits.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('sensor_id', 'string'),
    ('batch_id', 'string'),
    ('equipment_id', 'string'),
    ('sensor_type', 'string'),
    ('value', 'double'),
    ('unit', 'string'),
    ('spec_min', 'double'),
    ('spec_max', 'double')
] -%}

with bronze_events as (
    select * from {{ bronze('manufacturing.sensor.reading') }} as bronze_rows
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
