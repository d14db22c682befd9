{{ config(alias='manufacturing_deviation_closed') }}
{#
  silver.manufacturing_deviation_closed: one row per distinct `manufacturing.deviation.closed` event.
  A quality deviation was closed, optionally with a CAPA (resolution scrubbed by ingest).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('deviation_id', 'string'),
    ('batch_id', 'string'),
    ('capa_id', 'string'),
    ('resolution', 'string')
] -%}

with bronze_events as (
    select * from {{ bronze('manufacturing.deviation.closed') }} as bronze_rows
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
