{#
  gold.fact_survey: one row per patient satisfaction survey (survey_id), with the order it is
  about.

  Business rules ("first"/"latest" by EVENT time; ties by ingest time, then event_id):
    * The survey: its LATEST submitted event (a resubmission replaces the answers);
      submitted_at is that event's time.
    * nps_category: PROMOTER (nps 9-10), PASSIVE (7-8), DETRACTOR (0-6).
    * comment: as ingest left it (names, phone numbers and e-mails already scrubbed).
    * sentiment_label / sentiment_score / sentiment_model_version: the comment's sentiment as
      the champion sentiment model scored it (gold.ml_survey_sentiment, written by
      `pharmaflow score`, which also sets these columns on the rows already built); null until
      scored.
    * The order's pharmacy_id, ndc, patient_key and placed_at: the order's FIRST placed event
      (as in gold.fact_order_lifecycle); null, with has_order = false, while the placement has
      not arrived (an order may arrive after its survey).

  Incremental (macros/incremental.sql): the surveys to rebuild are those with a newly ingested
  survey event AND those whose order has a newly ingested placed event (the late order fills in
  the survey's pharmacy, product and patient). last_ingest_time is the newest ingest_time of the
  survey's events and its order's placed events.
#}

{#- BigQuery only (ignored elsewhere): day partitions of submitted_at (NPS is read per period);
    clustered by pharmacy and product, the usual filters. -#}
{{ config(
    materialized='incremental',
    unique_key='survey_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('submitted_at'),
    cluster_by=pf_bq_cluster(['pharmacy_id', 'ndc']),
) }}

{%- set surveys_of_new_placements -%}
    select survey.survey_id
    from {{ ref('silver_feedback_survey_submitted') }} as survey
    where survey.order_id in (
        {{ pf_new_keys('silver_pharmacy_order_placed', 'order_id', 'order_id') }}
    )
{%- endset %}

with changed_surveys as (
    {{ pf_changed_keys('survey_id', [
        pf_new_keys('silver_feedback_survey_submitted', 'survey_id', 'survey_id'),
        surveys_of_new_placements,
    ]) }}
),

survey_events as (
    select * from {{ ref('silver_feedback_survey_submitted') }}
    where {{ pf_key_changed('survey_id', 'changed_surveys') }}
),

latest_submission as (
    {{ pf_pick_one('survey_events', 'survey_id', pf_event_order('latest')) }}
),

survey_watermark as (
    select survey_id, max(ingest_time) as last_ingest_time
    from survey_events
    group by survey_id
),

placed_events as (
    select * from {{ ref('silver_pharmacy_order_placed') }}
    where order_id in (select order_id from latest_submission)
),

first_placement as (
    {{ pf_pick_one('placed_events', 'order_id', pf_event_order('first')) }}
),

placement_watermark as (
    select order_id, max(ingest_time) as last_ingest_time
    from placed_events
    group by order_id
)

select
    latest_submission.survey_id,
    latest_submission.order_id,
    latest_submission.rating,
    latest_submission.nps,
    {{ pf_nps_category('latest_submission.nps') }} as nps_category,
    latest_submission.comment,
    latest_submission.event_time as submitted_at,
    first_placement.order_id is not null as has_order,
    first_placement.pharmacy_id,
    first_placement.ndc,
    first_placement.patient_key,
    first_placement.event_time as order_placed_at,
    sentiment.sentiment_label,
    sentiment.sentiment_score,
    sentiment.model_version as sentiment_model_version,
    {{ pf_greatest(['survey_watermark.last_ingest_time', 'placement_watermark.last_ingest_time']) }}
        as last_ingest_time
from latest_submission
inner join survey_watermark
    on survey_watermark.survey_id = latest_submission.survey_id
left join first_placement
    on first_placement.order_id = latest_submission.order_id
left join placement_watermark
    on placement_watermark.order_id = latest_submission.order_id
left join {{ source('ml_scores', 'ml_survey_sentiment') }} as sentiment
    on sentiment.survey_id = latest_submission.survey_id
