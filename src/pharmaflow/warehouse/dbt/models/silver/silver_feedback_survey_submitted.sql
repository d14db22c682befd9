{{ config(
    alias='feedback_survey_submitted',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
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
