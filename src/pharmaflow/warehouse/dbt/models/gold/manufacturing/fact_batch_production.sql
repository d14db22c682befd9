{#
  gold.fact_batch_production: one row per manufacturing batch (batch_id) with its outcome,
  yield, lab, sensor and deviation summary, and a QA disposition flag.

  Business rules ("first"/"latest" by EVENT time; ties by ingest time, then event_id):
    * The batches are every batch_id seen in a batch-status, sensor, lab or deviation event
      (sensor data can arrive before the first status event).
    * final_status and the batch attributes (lot, product, site, equipment, size): the LATEST
      status event.
    * started_at: the first IN_PROGRESS; completed_at: the latest COMPLETED or FAILED.
    * actual_yield_kg: from the latest COMPLETED event; yield_pct = 100 * actual / batch size.
      Set-aside (macros/gold_rules.sql, listed in gold._rejected): a yield above 110 % of the
      batch size (a wrong unit or size) is not used: actual_yield_kg and yield_pct are null and
      the batch does not feed kpi_quality.avg_yield_pct; the event still completes the batch.
    * lab_pass_rate = PASS results / all results (CONDITIONAL counts as not passed); every
      result counts, a retest does not erase a failure.
    * sensor_out_of_spec: readings below spec_min or above spec_max (all sensor types);
      temperature_compliance_pct: % of TEMPERATURE readings within spec.
    * open_deviations: deviations opened and not (yet) closed (matched on deviation_id).
    * quality_flag (QA disposition, first match wins):
        REJECTED    final_status FAILED, or any lab result FAIL;
        IN_PROCESS  not finished yet (QUEUED / IN_PROGRESS / no status seen): no verdict;
        RELEASABLE  COMPLETED, at least one lab result and all of them PASS, no open deviation,
                    and out-of-spec sensor readings at most var('qa_max_out_of_spec_pct') % of
                    all readings (default 1 %);
        REVIEW      everything else (ON_HOLD, CONDITIONAL results, no lab results yet, open
                    deviations, too many out-of-spec readings, a yield set aside as
                    implausible: the batch record needs checking before release).
    * site_sk / site_region, product_sk: the reference versions valid when the batch started
      (or at its latest status when no start was seen), SCD2 (macros/history.sql).

  Incremental (macros/incremental.sql): a batch touched by a newly ingested event is rebuilt
  from all its events; last_ingest_time is the newest ingest_time behind the row.
#}

{{ config(
    materialized='incremental',
    unique_key='batch_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('status_changed_at'),
    cluster_by=pf_bq_cluster(['site_id', 'ndc', 'quality_flag']),
) }}

{%- set batch_events = [
    ('silver_manufacturing_batch_status', 'batch_id'),
    ('silver_manufacturing_sensor_reading', 'batch_id'),
    ('silver_manufacturing_lab_result', 'batch_id'),
    ('silver_manufacturing_deviation_opened', 'batch_id'),
    ('silver_manufacturing_deviation_closed', 'batch_id'),
] %}

with changed_batches as (
    {{ pf_changed_keys('batch_id', batch_events) }}
),

status_events as (
    select * from {{ ref('silver_manufacturing_batch_status') }}
    where {{ pf_key_changed('batch_id', 'changed_batches') }}
),

sensor_readings as (
    select * from {{ ref('silver_manufacturing_sensor_reading') }}
    where {{ pf_key_changed('batch_id', 'changed_batches') }}
),

lab_results as (
    select * from {{ ref('silver_manufacturing_lab_result') }}
    where {{ pf_key_changed('batch_id', 'changed_batches') }}
),

deviations_opened as (
    select * from {{ ref('silver_manufacturing_deviation_opened') }}
    where {{ pf_key_changed('batch_id', 'changed_batches') }}
),

deviations_closed as (
    select * from {{ ref('silver_manufacturing_deviation_closed') }}
    where {{ pf_key_changed('batch_id', 'changed_batches') }}
),

ingest_watermark as (
    select batch_id, max(last_ingest_time) as last_ingest_time
    from (
        select batch_id, max(ingest_time) as last_ingest_time from status_events group by batch_id
        union all
        select batch_id, max(ingest_time) from sensor_readings group by batch_id
        union all
        select batch_id, max(ingest_time) from lab_results group by batch_id
        union all
        select batch_id, max(ingest_time) from deviations_opened group by batch_id
        union all
        select batch_id, max(ingest_time) from deviations_closed group by batch_id
    ) per_source
    group by batch_id
),

batches as (
    select batch_id from status_events
    union distinct
    select batch_id from sensor_readings
    union distinct
    select batch_id from lab_results
    union distinct
    select batch_id from deviations_opened
),

latest_status as (
    {{ pf_pick_one('status_events', 'batch_id', pf_event_order('latest')) }}
),

completion_events as (
    select * from status_events where status = 'COMPLETED'
),

latest_completion as (
    {{ pf_pick_one('completion_events', 'batch_id', pf_event_order('latest')) }}
),

-- set-aside: an implausible yield (gold._rejected)
rejected_yields as (
    {{ pf_reject_implausible_yield('latest_completion', 'latest_status') }}
),

used_yield as (
    {{ pf_not_rejected('latest_completion', 'rejected_yields') }}
),

status_summary as (
    select
        batch_id,
        min(case when status = 'IN_PROGRESS' then event_time end) as started_at,
        max(case when status in ('COMPLETED', 'FAILED') then event_time end) as completed_at,
        count(*) as status_events
    from status_events
    group by batch_id
),

lab_summary as (
    select
        batch_id,
        count(*) as lab_tests,
        {{ pf_count_if("outcome = 'PASS'") }} as lab_tests_passed,
        {{ pf_count_if("outcome = 'FAIL'") }} as lab_tests_failed,
        {{ pf_count_if("outcome = 'CONDITIONAL'") }} as lab_tests_conditional
    from lab_results
    group by batch_id
),

sensor_summary as (
    select
        batch_id,
        count(*) as sensor_readings,
        {{ pf_count_if("value < spec_min or value > spec_max") }} as sensor_out_of_spec,
        {{ pf_count_if("sensor_type = 'TEMPERATURE'") }} as temperature_readings,
        {{ pf_count_if("sensor_type = 'TEMPERATURE' and value >= spec_min and value <= spec_max") }}
            as temperature_readings_in_spec
    from sensor_readings
    group by batch_id
),

deviation_summary as (
    select
        opened.batch_id,
        count(*) as deviations,
        {{ pf_count_if("closed.deviation_id is null") }} as open_deviations,
        {{ pf_count_if("closed.deviation_id is null and opened.severity = 'CRITICAL'") }}
            as open_critical_deviations
    from (
        select distinct batch_id, deviation_id, severity from deviations_opened
    ) opened
    left join (
        select distinct deviation_id from deviations_closed
    ) closed
        on closed.deviation_id = opened.deviation_id
    group by opened.batch_id
),

batch_facts as (
    select
        batches.batch_id,
        latest_status.lot_number,
        latest_status.ndc,
        latest_status.site_id,
        latest_status.equipment_id,
        latest_status.operator_id,
        latest_status.status as final_status,
        latest_status.event_time as status_changed_at,
        status_summary.started_at,
        status_summary.completed_at,
        latest_status.batch_size_kg,
        used_yield.actual_yield_kg,
        {{ pf_safe_ratio('100 * used_yield.actual_yield_kg', 'latest_status.batch_size_kg',
                         'decimal(12,2)') }} as yield_pct,
        latest_completion.batch_id is not null and used_yield.batch_id is null
            as yield_set_aside,

        coalesce(lab_summary.lab_tests, 0) as lab_tests,
        coalesce(lab_summary.lab_tests_passed, 0) as lab_tests_passed,
        coalesce(lab_summary.lab_tests_failed, 0) as lab_tests_failed,
        coalesce(lab_summary.lab_tests_conditional, 0) as lab_tests_conditional,
        {{ pf_safe_ratio('lab_summary.lab_tests_passed', 'lab_summary.lab_tests', 'decimal(6,4)') }}
            as lab_pass_rate,

        coalesce(sensor_summary.sensor_readings, 0) as sensor_readings,
        coalesce(sensor_summary.sensor_out_of_spec, 0) as sensor_out_of_spec,
        coalesce(sensor_summary.temperature_readings, 0) as temperature_readings,
        cast(100 * {{ pf_safe_ratio('sensor_summary.temperature_readings_in_spec',
                                    'sensor_summary.temperature_readings', 'decimal(12,6)') }}
             as decimal(6,2)) as temperature_compliance_pct,

        coalesce(deviation_summary.deviations, 0) as deviations,
        coalesce(deviation_summary.open_deviations, 0) as open_deviations,
        coalesce(deviation_summary.open_critical_deviations, 0) as open_critical_deviations,

        site.facility_sk as site_sk,
        site.region as site_region,
        product.product_sk,
        ingest_watermark.last_ingest_time
    from batches
    left join latest_status on latest_status.batch_id = batches.batch_id
    left join latest_completion on latest_completion.batch_id = batches.batch_id
    left join used_yield on used_yield.batch_id = batches.batch_id
    left join status_summary on status_summary.batch_id = batches.batch_id
    left join lab_summary on lab_summary.batch_id = batches.batch_id
    left join sensor_summary on sensor_summary.batch_id = batches.batch_id
    left join deviation_summary on deviation_summary.batch_id = batches.batch_id
    left join ingest_watermark on ingest_watermark.batch_id = batches.batch_id
    {{ pf_join_version('dim_facility', 'site', 'facility_id', 'latest_status.site_id', 'coalesce(status_summary.started_at, latest_status.event_time)') }}
    {{ pf_join_version('dim_product', 'product', 'ndc', 'latest_status.ndc', 'coalesce(status_summary.started_at, latest_status.event_time)') }}
)

select
    batch_facts.*,
    case
        when final_status = 'FAILED' or lab_tests_failed > 0
            then 'REJECTED'
        when final_status is null or final_status in ('QUEUED', 'IN_PROGRESS')
            then 'IN_PROCESS'
        when final_status = 'COMPLETED'
            and lab_tests > 0
            and lab_tests_passed = lab_tests
            and open_deviations = 0
            and not yield_set_aside
            and sensor_out_of_spec <= sensor_readings * {{ var('qa_max_out_of_spec_pct', 1.0) }} / 100.0
            then 'RELEASABLE'
        else 'REVIEW'
    end as quality_flag
from batch_facts
