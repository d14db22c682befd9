{#
  gold.fact_deviation: one row per quality deviation (deviation_id) opened against a
  manufacturing batch, with its investigation time and CAPA.

  Business rules ("first"/"latest" by EVENT time; ties by ingest time, then event_id):
    * The deviations are every deviation_id seen in an opened or closed event: a closure whose
      opening has not arrived is kept with has_opened_event = false (opened_at, severity and
      category null).
    * batch_id, severity, category, opened_at: the FIRST opened event (batch_id falls back to
      the closure's).
    * Closure: the LATEST closed event (a re-closure corrects the CAPA); closed_at is its event
      time, capa_id its CAPA (null when closed without one), has_capa = capa_id is not null.
    * Set-aside (macros/gold_rules.sql, listed in gold._rejected): a closed event timestamped
      before the deviation's first opening is not used (closed_at, capa_id, is_open), so
      investigation_days is never negative; the deviation stays open until a valid closure.
    * is_open: no closed event used yet. investigation_days = closed_at - opened_at in days,
      decimal(12,2); null while open (or without an opening).
    * The free-text description / resolution stay in silver (already scrubbed by ingest).

  Incremental (macros/incremental.sql): a deviation touched by a newly ingested event is rebuilt
  from all its events; last_ingest_time is the newest ingest_time behind the row.
#}

{#- BigQuery only (ignored elsewhere): day partitions of opened_at (QA looks at recent
    deviations); clustered by batch and severity, the usual filters. -#}
{{ config(
    materialized='incremental',
    unique_key='deviation_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('opened_at'),
    cluster_by=pf_bq_cluster(['batch_id', 'severity']),
) }}

with changed_deviations as (
    {{ pf_changed_keys('deviation_id', [
        pf_new_keys('silver_manufacturing_deviation_opened', 'deviation_id', 'deviation_id'),
        pf_new_keys('silver_manufacturing_deviation_closed', 'deviation_id', 'deviation_id'),
    ]) }}
),

opened_events as (
    select * from {{ ref('silver_manufacturing_deviation_opened') }}
    where {{ pf_key_changed('deviation_id', 'changed_deviations') }}
),

closed_events as (
    select * from {{ ref('silver_manufacturing_deviation_closed') }}
    where {{ pf_key_changed('deviation_id', 'changed_deviations') }}
),

deviations as (
    select deviation_id from opened_events
    union distinct
    select deviation_id from closed_events
),

first_opening as (
    {{ pf_pick_one('opened_events', 'deviation_id', pf_event_order('first')) }}
),

-- set-aside: closures timestamped before the opening (gold._rejected)
rejected_closures as (
    {{ pf_reject_closure_before_opening('closed_events', 'first_opening') }}
),

used_closures as (
    {{ pf_not_rejected('closed_events', 'rejected_closures') }}
),

latest_closure as (
    {{ pf_pick_one('used_closures', 'deviation_id', pf_event_order('latest')) }}
),

opened_watermark as (
    select deviation_id, max(ingest_time) as last_ingest_time
    from opened_events
    group by deviation_id
),

closed_watermark as (
    select deviation_id, max(ingest_time) as last_ingest_time
    from closed_events
    group by deviation_id
)

select
    deviations.deviation_id,
    coalesce(first_opening.batch_id, latest_closure.batch_id) as batch_id,
    first_opening.deviation_id is not null as has_opened_event,
    first_opening.severity,
    first_opening.category,
    first_opening.event_time as opened_at,
    latest_closure.event_time as closed_at,
    latest_closure.deviation_id is null as is_open,
    {{ pf_days_between('first_opening.event_time', 'latest_closure.event_time') }}
        as investigation_days,
    latest_closure.capa_id,
    latest_closure.capa_id is not null as has_capa,
    {{ pf_greatest(['opened_watermark.last_ingest_time', 'closed_watermark.last_ingest_time']) }}
        as last_ingest_time
from deviations
left join first_opening on first_opening.deviation_id = deviations.deviation_id
left join latest_closure on latest_closure.deviation_id = deviations.deviation_id
left join opened_watermark on opened_watermark.deviation_id = deviations.deviation_id
left join closed_watermark on closed_watermark.deviation_id = deviations.deviation_id
