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

{{ pf_silver_select('feedback.survey.submitted', payload_columns) }}
