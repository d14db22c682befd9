{#
  gold.kpi_quality: plant quality KPIs, one row overall (scope ALL, site_id null) and one per
  manufacturing site (scope SITE). From gold.fact_batch_production, gold.fact_deviation,
  gold.dim_equipment and the TEMPERATURE sensor readings of silver. A batch counts at the site
  of its latest status event; a batch without one (only sensor / lab / deviation data) and the
  deviations and readings of such a batch count only in ALL.

  Definitions:
    * batch_pass_rate = releasable_batches / finished_batches: of the batches whose latest
      status is COMPLETED or FAILED, the share whose QA disposition (quality_flag) is
      RELEASABLE (completed, every lab result PASS, no open deviation, sensor readings within
      the out-of-spec allowance). decimal(6,4), null without a finished batch.
    * avg_yield_pct: mean of yield_pct (100 * actual / planned kg) over the batches with a
      yield (a COMPLETED event whose yield is not set aside: above 110 % of the batch size it
      is listed in gold._rejected and left out), decimal(8,2).
    * Equipment utilisation: the observed window runs from the first batch start (first
      IN_PROGRESS) to the latest batch status event of ALL batches (the same window for every
      site). A batch occupies its equipment from started_at to completed_at (latest COMPLETED /
      FAILED), or to the end of the window while it has not completed; a batch never started
      occupies nothing. equipment_utilisation = equipment_busy_hours / (equipment *
      observed_hours), where equipment counts the site's equipment in reference.equipment plus
      any other equipment its batches ran on. decimal(6,4); can exceed 1 only if batches
      overlap on one piece of equipment.
    * temperature_compliance_pct = 100 * TEMPERATURE sensor readings within [spec_min,
      spec_max] / all TEMPERATURE readings of the site's batches, decimal(6,2).
    * Deviations (gold.fact_deviation, site of the batch): deviations, open (no closure yet),
      open CRITICAL; avg_investigation_days = mean closed - opened days over the closed ones;
      capas_raised = closed deviations that raised a CAPA (no event closes a CAPA, so open
      CAPAs cannot be counted).
#}

with batches as (
    select * from {{ ref('fact_batch_production') }}
),

deviations as (
    select
        deviation.*,
        batch.site_id
    from {{ ref('fact_deviation') }} as deviation
    left join batches as batch
        on batch.batch_id = deviation.batch_id
),

observed_window as (
    select
        min(started_at) as observed_from,
        max(status_changed_at) as observed_to
    from batches
),

batch_runs as (
    select
        batches.*,
        case
            when batches.started_at is not null
                and coalesce(batches.completed_at, observed_window.observed_to) >= batches.started_at
                then {{ pf_hours_between('batches.started_at',
                                         'coalesce(batches.completed_at, observed_window.observed_to)') }}
        end as run_hours
    from batches
    cross join observed_window
),

equipment as (
    select site_id, equipment_id from {{ ref('dim_equipment') }}
    union distinct
    select site_id, equipment_id from batches
    where site_id is not null and equipment_id is not null
),

temperature_readings as (
    select
        batch.site_id,
        reading.value >= reading.spec_min and reading.value <= reading.spec_max as is_in_spec
    from {{ ref('silver_manufacturing_sensor_reading') }} as reading
    left join batches as batch
        on batch.batch_id = reading.batch_id
    where reading.sensor_type = 'TEMPERATURE'
),

batch_scopes as (
    {{ pf_kpi_scopes('batch_runs', 'SITE', 'site_id') }}
),

deviation_scopes as (
    {{ pf_kpi_scopes('deviations', 'SITE', 'site_id') }}
),

equipment_scopes as (
    {{ pf_kpi_scopes('equipment', 'SITE', 'site_id') }}
),

temperature_scopes as (
    {{ pf_kpi_scopes('temperature_readings', 'SITE', 'site_id') }}
),

batch_kpis as (
    select
        scope,
        scope_id,
        count(*) as batches,
        {{ pf_count_if("final_status in ('COMPLETED', 'FAILED')") }} as finished_batches,
        {{ pf_count_if("quality_flag = 'RELEASABLE'") }} as releasable_batches,
        {{ pf_count_if("quality_flag = 'REJECTED'") }} as rejected_batches,
        {{ pf_count_if("quality_flag = 'REVIEW'") }} as review_batches,
        {{ pf_exact_avg('yield_pct', 'decimal(8,2)') }} as avg_yield_pct,
        sum(run_hours) as equipment_busy_hours
    from batch_scopes
    group by scope, scope_id
),

deviation_kpis as (
    select
        scope,
        scope_id,
        count(*) as deviations,
        {{ pf_count_if('is_open') }} as open_deviations,
        {{ pf_count_if("is_open and severity = 'CRITICAL'") }} as open_critical_deviations,
        {{ pf_count_if('not is_open') }} as closed_deviations,
        {{ pf_exact_avg('investigation_days', 'decimal(8,2)') }} as avg_investigation_days,
        {{ pf_count_if('has_capa') }} as capas_raised
    from deviation_scopes
    group by scope, scope_id
),

equipment_kpis as (
    select
        scope,
        scope_id,
        count(distinct equipment_id) as equipment
    from equipment_scopes
    group by scope, scope_id
),

temperature_kpis as (
    select
        scope,
        scope_id,
        count(*) as temperature_readings,
        {{ pf_count_if('is_in_spec') }} as temperature_readings_in_spec
    from temperature_scopes
    group by scope, scope_id
),

scopes as (
    select
        cast('ALL' as {{ dbt.type_string() }}) as scope,
        cast('ALL' as {{ dbt.type_string() }}) as scope_id
    union distinct
    select scope, scope_id from batch_kpis
    union distinct
    select scope, scope_id from deviation_kpis
    union distinct
    select scope, scope_id from equipment_kpis
    union distinct
    select scope, scope_id from temperature_kpis
),

kpis as (
    select
        scopes.scope,
        case when scopes.scope = 'SITE' then scopes.scope_id end as site_id,
        coalesce(batch_kpis.batches, 0) as batches,
        coalesce(batch_kpis.finished_batches, 0) as finished_batches,
        coalesce(batch_kpis.releasable_batches, 0) as releasable_batches,
        coalesce(batch_kpis.rejected_batches, 0) as rejected_batches,
        coalesce(batch_kpis.review_batches, 0) as review_batches,
        batch_kpis.avg_yield_pct,
        coalesce(equipment_kpis.equipment, 0) as equipment,
        cast(coalesce(batch_kpis.equipment_busy_hours, 0) as decimal(14,2)) as equipment_busy_hours,
        coalesce(temperature_kpis.temperature_readings, 0) as temperature_readings,
        temperature_kpis.temperature_readings_in_spec,
        coalesce(deviation_kpis.deviations, 0) as deviations,
        coalesce(deviation_kpis.open_deviations, 0) as open_deviations,
        coalesce(deviation_kpis.open_critical_deviations, 0) as open_critical_deviations,
        coalesce(deviation_kpis.closed_deviations, 0) as closed_deviations,
        deviation_kpis.avg_investigation_days,
        coalesce(deviation_kpis.capas_raised, 0) as capas_raised
    from scopes
    left join batch_kpis
        on batch_kpis.scope = scopes.scope and batch_kpis.scope_id = scopes.scope_id
    left join deviation_kpis
        on deviation_kpis.scope = scopes.scope and deviation_kpis.scope_id = scopes.scope_id
    left join equipment_kpis
        on equipment_kpis.scope = scopes.scope and equipment_kpis.scope_id = scopes.scope_id
    left join temperature_kpis
        on temperature_kpis.scope = scopes.scope and temperature_kpis.scope_id = scopes.scope_id
)

select
    kpis.scope,
    kpis.site_id,
    kpis.batches,
    kpis.finished_batches,
    kpis.releasable_batches,
    kpis.rejected_batches,
    kpis.review_batches,
    {{ pf_safe_ratio('kpis.releasable_batches', 'kpis.finished_batches', 'decimal(6,4)') }}
        as batch_pass_rate,
    kpis.avg_yield_pct,
    kpis.equipment,
    kpis.equipment_busy_hours,
    observed_window.observed_from,
    observed_window.observed_to,
    {{ pf_hours_between('observed_window.observed_from', 'observed_window.observed_to') }}
        as observed_hours,
    {{ pf_safe_ratio('kpis.equipment_busy_hours',
                     'kpis.equipment * ' ~ pf_hours_between('observed_window.observed_from',
                                                            'observed_window.observed_to'),
                     'decimal(6,4)') }} as equipment_utilisation,
    kpis.temperature_readings,
    {{ pf_safe_ratio('100 * kpis.temperature_readings_in_spec', 'kpis.temperature_readings',
                     'decimal(6,2)') }} as temperature_compliance_pct,
    kpis.deviations,
    kpis.open_deviations,
    kpis.open_critical_deviations,
    kpis.closed_deviations,
    kpis.avg_investigation_days,
    kpis.capas_raised
from kpis
cross join observed_window
