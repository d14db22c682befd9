{{ config(alias='feedback_survey_submitted') }}
{#
  silver.feedback_survey_submitted: one row per distinct `feedback.survey.submitted` event.
  A patient satisfaction survey about an order (comment scrubbed by ingest).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('survey_id', 'string'),
    ('order_id', 'string'),
    ('rating', 'int'),
    ('nps', 'int'),
    ('comment', 'string')
] -%}

with bronze_events as (
    select * from {{ bronze('feedback.survey.submitted') }} as bronze_rows
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
