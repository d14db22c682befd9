{{ config(alias='manufacturing_lab_result') }}
{#
  silver.manufacturing_lab_result: one row per distinct `manufacturing.lab.result` event.
  A LIMS test result for a batch, with spec limits and outcome (PASS, FAIL, CONDITIONAL).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('test_id', 'string'),
    ('batch_id', 'string'),
    ('test_name', 'string'),
    ('result', 'double'),
    ('unit', 'string'),
    ('spec_min', 'double'),
    ('spec_max', 'double'),
    ('outcome', 'string'),
    ('analyst_id', 'string')
] -%}

with bronze_events as (
    select * from {{ bronze('manufacturing.lab.result') }} as bronze_rows
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
