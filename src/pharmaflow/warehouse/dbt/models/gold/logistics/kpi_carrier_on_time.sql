{#
  gold.kpi_carrier_on_time: delivery performance per carrier (scope CARRIER) and overall (scope
  ALL, carrier_id null), over every leg in gold.fact_shipment (shipments without a created event
  have no carrier and count only in ALL).

  Definitions:
    * on_time_rate = on-time deliveries / deliveries with a promise: of the delivered shipments
      that carry a promised_delivery_time, the share delivered at or before it (first delivered
      event). decimal(6,4).
    * Transit time = fact_shipment.transit_hours (first pick-up scan, else creation, to
      delivery) of the delivered shipments: p50 / p90 continuous percentiles and mean,
      decimal(12,2).
    * exception_rate = shipments with at least one carrier exception / shipments; lost =
      shipments with a LOST exception.
    * Cold chain: cold_chain_shipments; excursion_shipments = cold-chain shipments whose
      data logger spent time out of spec (excursion_minutes > 0); temperature_compliance_pct =
      100 * in-spec logger readings / all readings of the carrier's shipments, decimal(6,2)
      (per reading: every reading weighs the same, however long it stood for).
    * Time-weighted cold chain: time_in_spec_pct = 100 * time_in_spec_minutes /
      monitored_minutes, summed over the shipments (fact_shipment: each logger reading holds
      until that logger's next reading; monitored time runs from a logger's first to its last
      reading). The share of monitored TIME within spec, which a regulator reads where a burst
      of readings during an excursion would tilt the per-reading share. decimal(6,2), null
      without monitored time.
    * delivered_at is the FIRST delivery (fact_shipment); deliveries set aside in gold._rejected
      (timestamped before the pick-up) count as not delivered.
#}

with shipments as (
    select * from {{ ref('fact_shipment') }}
),

shipment_scopes as (
    {{ pf_kpi_scopes('shipments', 'CARRIER', 'carrier_id') }}
),

kpis as (
    select
        scope,
        scope_id,
        count(*) as shipments,
        {{ pf_count_if('delivered_at is not null') }} as shipments_delivered,
        {{ pf_count_if('on_time is not null') }} as deliveries_with_promise,
        {{ pf_count_if('on_time') }} as deliveries_on_time,
        {{ pf_cast_decimal(pf_percentile('transit_hours', 0.5), 'decimal(12,2)') }}
            as transit_p50_hours,
        {{ pf_cast_decimal(pf_percentile('transit_hours', 0.9), 'decimal(12,2)') }}
            as transit_p90_hours,
        {{ pf_exact_avg('transit_hours', 'decimal(12,2)') }} as avg_transit_hours,
        {{ pf_count_if('exceptions > 0') }} as shipments_with_exception,
        {{ pf_count_if('exceptions_lost > 0') }} as shipments_lost,
        {{ pf_count_if('cold_chain') }} as cold_chain_shipments,
        {{ pf_count_if('cold_chain and excursion_minutes > 0') }} as excursion_shipments,
        sum(temperature_readings) as temperature_readings,
        sum(temperature_out_of_spec) as temperature_out_of_spec,
        sum(monitored_minutes) as monitored_minutes,
        sum(time_in_spec_minutes) as time_in_spec_minutes
    from shipment_scopes
    group by scope, scope_id
),

scopes as (
    {{ pf_kpi_scope_rows('kpis') }}
)

select
    scopes.scope,
    case when scopes.scope = 'CARRIER' then scopes.scope_id end as carrier_id,
    coalesce(kpis.shipments, 0) as shipments,
    coalesce(kpis.shipments_delivered, 0) as shipments_delivered,
    coalesce(kpis.deliveries_with_promise, 0) as deliveries_with_promise,
    coalesce(kpis.deliveries_on_time, 0) as deliveries_on_time,
    {{ pf_safe_ratio('kpis.deliveries_on_time', 'kpis.deliveries_with_promise', 'decimal(6,4)') }}
        as on_time_rate,
    kpis.transit_p50_hours,
    kpis.transit_p90_hours,
    kpis.avg_transit_hours,
    coalesce(kpis.shipments_with_exception, 0) as shipments_with_exception,
    {{ pf_safe_ratio('kpis.shipments_with_exception', 'kpis.shipments', 'decimal(6,4)') }}
        as exception_rate,
    coalesce(kpis.shipments_lost, 0) as shipments_lost,
    coalesce(kpis.cold_chain_shipments, 0) as cold_chain_shipments,
    coalesce(kpis.excursion_shipments, 0) as excursion_shipments,
    cast(coalesce(kpis.temperature_readings, 0) as {{ dbt.type_bigint() }}) as temperature_readings,
    {{ pf_safe_ratio('100 * (kpis.temperature_readings - kpis.temperature_out_of_spec)',
                     'kpis.temperature_readings', 'decimal(6,2)') }} as temperature_compliance_pct,
    cast(kpis.monitored_minutes as decimal(14,2)) as monitored_minutes,
    cast(kpis.time_in_spec_minutes as decimal(14,2)) as time_in_spec_minutes,
    {{ pf_safe_ratio('100 * kpis.time_in_spec_minutes', 'kpis.monitored_minutes', 'decimal(6,2)') }}
        as time_in_spec_pct
from scopes
left join kpis
    on kpis.scope = scopes.scope and kpis.scope_id = scopes.scope_id
