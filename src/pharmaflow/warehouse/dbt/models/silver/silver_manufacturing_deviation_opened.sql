{{ config(alias='manufacturing_deviation_opened') }}
{#
  silver.manufacturing_deviation_opened: one row per distinct `manufacturing.deviation.opened` event.
  A quality deviation was opened against a batch (description scrubbed by ingest).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('deviation_id', 'string'),
    ('batch_id', 'string'),
    ('severity', 'string'),
    ('category', 'string'),
    ('description', 'string')
] -%}

with bronze_events as (
    select * from {{ bronze('manufacturing.deviation.opened') }} as bronze_rows
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
