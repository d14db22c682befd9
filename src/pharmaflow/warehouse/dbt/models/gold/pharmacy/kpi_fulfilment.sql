{#
  gold.kpi_fulfilment: pharmacy order fulfilment KPIs, one row overall (scope ALL, pharmacy_id
  null) and one per dispensing pharmacy (scope PHARMACY). From gold.fact_order_lifecycle (the
  orders whose placed event has arrived: has_placed_event) and the insurance validations of
  silver (for the prior-authorisation clock).

  Definitions:
    * Fulfilment time = hours from placement to the FIRST delivery
      (fact_order_lifecycle.hours_to_deliver: when the goods first reached the patient; a
      re-delivery does not lengthen it) of the delivered orders: fulfilment_p50_hours /
      fulfilment_p90_hours are continuous percentiles (linear interpolation),
      avg_fulfilment_hours the mean; decimal(12,2). A delivery timestamped before its placement
      is set aside (gold._rejected), so fulfilment times are never negative.
    * insurance_rejection_rate (final) = orders whose LATEST insurance answer is REJECTED /
      orders with at least one insurance answer, decimal(6,4).
    * first_pass_rejection_rate = orders whose FIRST insurance answer is REJECTED
      (fact_order_lifecycle.first_insurance_status) / orders with at least one insurance
      answer, decimal(6,4): how often a claim bounces the first time, whether it is
      resubmitted and approved later or not.
    * Prior authorisation: orders_prior_auth = orders that were ever answered
      PRIOR_AUTH_REQUIRED; such an order is resolved when its latest answer is APPROVED or
      REJECTED. prior_auth_turnaround = hours from its FIRST PRIOR_AUTH_REQUIRED answer to that
      final answer (event times); p50 and mean over the resolved orders, decimal(12,2).
    * cancellation_rate = cancelled orders / orders, decimal(6,4).
  On-time delivery by carrier: gold.kpi_carrier_on_time.
#}

with orders as (
    select * from {{ ref('fact_order_lifecycle') }}
    where has_placed_event
),

prior_auth_requests as (
    select
        order_id,
        min(event_time) as first_prior_auth_at
    from {{ ref('silver_pharmacy_order_insurance_validated') }}
    where status = 'PRIOR_AUTH_REQUIRED'
    group by order_id
),

order_facts as (
    select
        orders.pharmacy_id,
        orders.hours_to_deliver,
        orders.insurance_status,
        orders.first_insurance_status,
        orders.insurance_validations,
        orders.prior_auth_required,
        orders.cancelled_at,
        case
            when orders.prior_auth_required
                and orders.insurance_status in ('APPROVED', 'REJECTED')
                and orders.insurance_validated_at >= prior_auth_requests.first_prior_auth_at
                then {{ pf_hours_between('prior_auth_requests.first_prior_auth_at',
                                         'orders.insurance_validated_at') }}
        end as prior_auth_turnaround_hours
    from orders
    left join prior_auth_requests
        on prior_auth_requests.order_id = orders.order_id
),

order_scopes as (
    {{ pf_kpi_scopes('order_facts', 'PHARMACY', 'pharmacy_id') }}
),

kpis as (
    select
        scope,
        scope_id,
        count(*) as orders,
        {{ pf_count_if('hours_to_deliver is not null') }} as orders_delivered,
        {{ pf_cast_decimal(pf_percentile('hours_to_deliver', 0.5), 'decimal(12,2)') }}
            as fulfilment_p50_hours,
        {{ pf_cast_decimal(pf_percentile('hours_to_deliver', 0.9), 'decimal(12,2)') }}
            as fulfilment_p90_hours,
        {{ pf_exact_avg('hours_to_deliver', 'decimal(12,2)') }} as avg_fulfilment_hours,
        {{ pf_count_if('insurance_validations > 0') }} as orders_with_insurance_answer,
        {{ pf_count_if("insurance_status = 'REJECTED'") }} as orders_rejected,
        {{ pf_count_if("first_insurance_status = 'REJECTED'") }} as orders_first_rejected,
        {{ pf_count_if('prior_auth_required') }} as orders_prior_auth,
        {{ pf_count_if('prior_auth_turnaround_hours is not null') }} as prior_auth_resolved,
        {{ pf_cast_decimal(pf_percentile('prior_auth_turnaround_hours', 0.5), 'decimal(12,2)') }}
            as prior_auth_turnaround_p50_hours,
        {{ pf_exact_avg('prior_auth_turnaround_hours', 'decimal(12,2)') }}
            as avg_prior_auth_turnaround_hours,
        {{ pf_count_if('cancelled_at is not null') }} as orders_cancelled
    from order_scopes
    group by scope, scope_id
),

scopes as (
    {{ pf_kpi_scope_rows('kpis') }}
)

select
    scopes.scope,
    case when scopes.scope = 'PHARMACY' then scopes.scope_id end as pharmacy_id,
    coalesce(kpis.orders, 0) as orders,
    coalesce(kpis.orders_delivered, 0) as orders_delivered,
    kpis.fulfilment_p50_hours,
    kpis.fulfilment_p90_hours,
    kpis.avg_fulfilment_hours,
    coalesce(kpis.orders_with_insurance_answer, 0) as orders_with_insurance_answer,
    coalesce(kpis.orders_rejected, 0) as orders_rejected,
    {{ pf_safe_ratio('kpis.orders_rejected', 'kpis.orders_with_insurance_answer', 'decimal(6,4)') }}
        as insurance_rejection_rate,
    coalesce(kpis.orders_first_rejected, 0) as orders_first_rejected,
    {{ pf_safe_ratio('kpis.orders_first_rejected', 'kpis.orders_with_insurance_answer', 'decimal(6,4)') }}
        as first_pass_rejection_rate,
    coalesce(kpis.orders_prior_auth, 0) as orders_prior_auth,
    coalesce(kpis.prior_auth_resolved, 0) as prior_auth_resolved,
    kpis.prior_auth_turnaround_p50_hours,
    kpis.avg_prior_auth_turnaround_hours,
    coalesce(kpis.orders_cancelled, 0) as orders_cancelled,
    {{ pf_safe_ratio('kpis.orders_cancelled', 'kpis.orders', 'decimal(6,4)') }} as cancellation_rate
from scopes
left join kpis
    on kpis.scope = scopes.scope and kpis.scope_id = scopes.scope_id
