{#
  gold.fact_order_lifecycle: one row per pharmacy order (order_id), from placement to delivery
  or cancellation.

  Business rules (all "first"/"latest" are by EVENT time, never arrival order; ties are broken
  by ingest time, then event_id, so reruns are deterministic):
    * The orders are every order_id seen in any pharmacy.order.* event: an order whose placed
      event has not arrived (late or quarantined) is kept, with has_placed_event = false and
      nulls for what only the placement carries.
    * Placement (patient, product, pharmacy, payer, placed_at): the FIRST placed event.
    * Insurance: insurance_status / insurance_validated_at / copay come from the LATEST
      validation, so PRIOR_AUTH_REQUIRED followed by APPROVED is APPROVED at the approval time;
      first_validated_at / first_insurance_status are the FIRST validation's (the first-pass
      answer); prior_auth_required is true when any validation asked for prior authorisation.
    * Fill, shipment, cancellation: the LATEST event of each kind (a re-fill or a re-shipment
      replaces the earlier lot / shipment). ndc falls back to the fill's NDC when the placement
      is missing.
    * Delivery: delivered_at is the FIRST delivery (when the goods first arrived, as in
      fact_shipment and lot_genealogy), last_delivered_at the latest (a re-delivery after a
      failed or disputed one), deliveries the number of delivery events used.
    * Set-asides (macros/gold_rules.sql, listed in gold._rejected): a fill or a delivery
      timestamped before the order's placement is not used for anything in this row (filled_at,
      lot, delivered_at, hours_to_deliver, current_status), so no order shows a fill or a
      delivery before it was placed. An order without a placement sets nothing aside until the
      placement arrives (then the order is rebuilt and judged).
    * current_status: the stage of the latest lifecycle event used; at equal event times the
      later stage wins (PLACED < insurance answer < FILLED < SHIPPED < DELIVERED < CANCELLED).
    * hours_to_deliver: delivered_at (first delivery) - placed_at in hours (null until
      delivered): the fulfilment time of kpi_fulfilment and the daily summaries.
    * pharmacy_timezone / placed_business_date: the pharmacy's IANA time zone (dim_facility,
      version valid at placed_at; UTC when unknown) and placed_at's calendar day there, the
      pharmacy's local business day (daily_pharmacy_order_summary_local).
    * pharmacy_sk / pharmacy_region, product_sk, payer_sk: the reference versions valid at
      placed_at (SCD2, macros/history.sql); a pharmacy that later changes region keeps this
      order on the region it had when the order was placed.

  Incremental (macros/incremental.sql): an order touched by a newly ingested event is rebuilt
  from all its events; last_ingest_time is the newest ingest_time behind the row.
#}

{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('placed_at'),
    cluster_by=pf_bq_cluster(['pharmacy_id', 'current_status', 'ndc']),
) }}

{%- set order_events = [
    ('silver_pharmacy_order_placed', 'order_id'),
    ('silver_pharmacy_order_insurance_validated', 'order_id'),
    ('silver_pharmacy_order_filled', 'order_id'),
    ('silver_pharmacy_order_shipped', 'order_id'),
    ('silver_pharmacy_order_delivered', 'order_id'),
    ('silver_pharmacy_order_cancelled', 'order_id'),
] %}

with changed_orders as (
    {{ pf_changed_keys('order_id', order_events) }}
),

placed_events as (
    select * from {{ ref('silver_pharmacy_order_placed') }}
    where {{ pf_key_changed('order_id', 'changed_orders') }}
),

validation_events as (
    select * from {{ ref('silver_pharmacy_order_insurance_validated') }}
    where {{ pf_key_changed('order_id', 'changed_orders') }}
),

filled_events as (
    select * from {{ ref('silver_pharmacy_order_filled') }}
    where {{ pf_key_changed('order_id', 'changed_orders') }}
),

shipped_events as (
    select * from {{ ref('silver_pharmacy_order_shipped') }}
    where {{ pf_key_changed('order_id', 'changed_orders') }}
),

delivered_events as (
    select * from {{ ref('silver_pharmacy_order_delivered') }}
    where {{ pf_key_changed('order_id', 'changed_orders') }}
),

cancelled_events as (
    select * from {{ ref('silver_pharmacy_order_cancelled') }}
    where {{ pf_key_changed('order_id', 'changed_orders') }}
),

-- every order seen in any order event
orders as (
    select order_id from placed_events
    union distinct
    select order_id from validation_events
    union distinct
    select order_id from filled_events
    union distinct
    select order_id from shipped_events
    union distinct
    select order_id from delivered_events
    union distinct
    select order_id from cancelled_events
),

first_placement as (
    {{ pf_pick_one('placed_events', 'order_id', pf_event_order('first')) }}
),

-- set-asides: fills and deliveries timestamped before the placement (gold._rejected)
rejected_events as (
    {{ pf_reject_before_placement('filled_events', 'first_placement', 'filled_before_placed', 'filled') }}
    union all
    {{ pf_reject_before_placement('delivered_events', 'first_placement', 'delivered_before_placed', 'delivered') }}
),

used_fills as (
    {{ pf_not_rejected('filled_events', 'rejected_events') }}
),

used_deliveries as (
    {{ pf_not_rejected('delivered_events', 'rejected_events') }}
),

first_validation as (
    {{ pf_pick_one('validation_events', 'order_id', pf_event_order('first')) }}
),

latest_validation as (
    {{ pf_pick_one('validation_events', 'order_id', pf_event_order('latest')) }}
),

validation_summary as (
    select
        order_id,
        min(event_time) as first_validated_at,
        count(*) as insurance_validations,
        {{ pf_count_if("status = 'PRIOR_AUTH_REQUIRED'") }} > 0 as prior_auth_required
    from validation_events
    group by order_id
),

latest_fill as (
    {{ pf_pick_one('used_fills', 'order_id', pf_event_order('latest')) }}
),

latest_shipment as (
    {{ pf_pick_one('shipped_events', 'order_id', pf_event_order('latest')) }}
),

delivery_summary as (
    select
        order_id,
        min(event_time) as delivered_at,
        max(event_time) as last_delivered_at,
        count(*) as deliveries
    from used_deliveries
    group by order_id
),

latest_cancellation as (
    {{ pf_pick_one('cancelled_events', 'order_id', pf_event_order('latest')) }}
),

-- every lifecycle event used as a stage, to find the stage reached last
lifecycle_events as (
    select order_id, event_time, ingest_time, event_id, 'PLACED' as stage, 1 as stage_rank
    from placed_events
    union all
    select
        order_id,
        event_time,
        ingest_time,
        event_id,
        case status
            when 'APPROVED' then 'INSURANCE_APPROVED'
            when 'REJECTED' then 'INSURANCE_REJECTED'
            when 'PRIOR_AUTH_REQUIRED' then 'PRIOR_AUTH_REQUIRED'
        end as stage,
        2 as stage_rank
    from validation_events
    union all
    select order_id, event_time, ingest_time, event_id, 'FILLED' as stage, 3 as stage_rank
    from used_fills
    union all
    select order_id, event_time, ingest_time, event_id, 'SHIPPED' as stage, 4 as stage_rank
    from shipped_events
    union all
    select order_id, event_time, ingest_time, event_id, 'DELIVERED' as stage, 5 as stage_rank
    from used_deliveries
    union all
    select order_id, event_time, ingest_time, event_id, 'CANCELLED' as stage, 6 as stage_rank
    from cancelled_events
),

current_stage as (
    {{ pf_pick_one('lifecycle_events', 'order_id', pf_event_order('latest', tie='stage_rank desc')) }}
),

-- every event of the order, set-aside ones included: they were read to build the row
ingest_watermark as (
    select order_id, max(ingest_time) as last_ingest_time
    from (
        select order_id, ingest_time from lifecycle_events
        union all
        select order_id, ingest_time from filled_events
        union all
        select order_id, ingest_time from delivered_events
    ) order_events
    group by order_id
)

select
    orders.order_id,
    first_placement.patient_key,
    coalesce(first_placement.ndc, latest_fill.ndc) as ndc,
    first_placement.pharmacy_id,
    first_placement.payer_id,
    first_placement.quantity,
    first_placement.days_supply,
    first_placement.priority,
    first_placement.order_id is not null as has_placed_event,
    first_placement.event_time as placed_at,

    latest_validation.event_time as insurance_validated_at,
    latest_validation.status as insurance_status,
    latest_validation.copay_amount,
    latest_validation.reject_code,
    validation_summary.first_validated_at,
    first_validation.status as first_insurance_status,
    coalesce(validation_summary.insurance_validations, 0) as insurance_validations,
    coalesce(validation_summary.prior_auth_required, false) as prior_auth_required,

    latest_fill.event_time as filled_at,
    latest_fill.lot_number,
    latest_fill.pharmacist_id,

    latest_shipment.event_time as shipped_at,
    latest_shipment.shipment_id,
    latest_shipment.carrier_id,

    delivery_summary.delivered_at,
    delivery_summary.last_delivered_at,
    coalesce(delivery_summary.deliveries, 0) as deliveries,

    latest_cancellation.event_time as cancelled_at,
    latest_cancellation.reason as cancel_reason,

    current_stage.stage as current_status,
    current_stage.event_time as status_changed_at,
    {{ pf_hours_between('first_placement.event_time', 'delivery_summary.delivered_at') }} as hours_to_deliver,

    pharmacy.facility_sk as pharmacy_sk,
    pharmacy.region as pharmacy_region,
    case
        when first_placement.pharmacy_id is not null then coalesce(pharmacy.timezone, 'UTC')
    end as pharmacy_timezone,
    {{ pf_local_date('first_placement.event_time', "coalesce(pharmacy.timezone, 'UTC')") }}
        as placed_business_date,
    product.product_sk,
    payer.payer_sk,
    ingest_watermark.last_ingest_time
from orders
left join first_placement on first_placement.order_id = orders.order_id
left join latest_validation on latest_validation.order_id = orders.order_id
left join validation_summary on validation_summary.order_id = orders.order_id
left join first_validation on first_validation.order_id = orders.order_id
left join latest_fill on latest_fill.order_id = orders.order_id
left join latest_shipment on latest_shipment.order_id = orders.order_id
left join delivery_summary on delivery_summary.order_id = orders.order_id
left join latest_cancellation on latest_cancellation.order_id = orders.order_id
left join current_stage on current_stage.order_id = orders.order_id
left join ingest_watermark on ingest_watermark.order_id = orders.order_id
{{ pf_join_version('dim_facility', 'pharmacy', 'facility_id', 'first_placement.pharmacy_id', 'first_placement.event_time') }}
{{ pf_join_version('dim_product', 'product', 'ndc', 'coalesce(first_placement.ndc, latest_fill.ndc)', 'coalesce(first_placement.event_time, latest_fill.event_time)') }}
{{ pf_join_version('dim_payer', 'payer', 'payer_id', 'first_placement.payer_id', 'first_placement.event_time') }}
