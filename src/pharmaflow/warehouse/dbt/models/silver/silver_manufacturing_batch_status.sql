{{ config(alias='manufacturing_batch_status') }}
{#
  silver.manufacturing_batch_status: one row per distinct `manufacturing.batch.status` event.
  A manufacturing batch changed status (QUEUED, IN_PROGRESS, COMPLETED, FAILED, ON_HOLD).
  actual_yield_kg is only set on COMPLETED.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('batch_id', 'string'),
    ('lot_number', 'string'),
    ('ndc', 'string'),
    ('site_id', 'string'),
    ('equipment_id', 'string'),
    ('operator_id', 'string'),
    ('status', 'string'),
    ('batch_size_kg', 'decimal'),
    ('actual_yield_kg', 'decimal')
] -%}

with bronze_events as (
    select * from {{ bronze('manufacturing.batch.status') }} as bronze_rows
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
