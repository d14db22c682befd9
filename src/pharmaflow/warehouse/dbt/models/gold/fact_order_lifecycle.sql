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
      first_validated_at is the first validation; prior_auth_required is true when any
      validation asked for prior authorisation.
    * Fill, shipment, delivery, cancellation: the LATEST event of each kind (a re-fill or a
      re-shipment replaces the earlier lot / shipment). ndc falls back to the fill's NDC when
      the placement is missing.
    * current_status: the stage of the latest lifecycle event; at equal event times the later
      stage wins (PLACED < insurance answer < FILLED < SHIPPED < DELIVERED < CANCELLED).
    * hours_to_deliver: delivered_at - placed_at in hours (null until delivered).
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
    union
    select order_id from validation_events
    union
    select order_id from filled_events
    union
    select order_id from shipped_events
    union
    select order_id from delivered_events
    union
    select order_id from cancelled_events
),

first_placement as (
    {{ pf_pick_one('placed_events', 'order_id', 'event_time, ingest_time, event_id') }}
),

latest_validation as (
    {{ pf_pick_one('validation_events', 'order_id', 'event_time desc, ingest_time desc, event_id desc') }}
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
    {{ pf_pick_one('filled_events', 'order_id', 'event_time desc, ingest_time desc, event_id desc') }}
),

latest_shipment as (
    {{ pf_pick_one('shipped_events', 'order_id', 'event_time desc, ingest_time desc, event_id desc') }}
),

latest_delivery as (
    {{ pf_pick_one('delivered_events', 'order_id', 'event_time desc, ingest_time desc, event_id desc') }}
),

latest_cancellation as (
    {{ pf_pick_one('cancelled_events', 'order_id', 'event_time desc, ingest_time desc, event_id desc') }}
),

-- every lifecycle event as a stage, to find the stage reached last
lifecycle_events as (
    select order_id, event_time, ingest_time, 'PLACED' as stage, 1 as stage_rank
    from placed_events
    union all
    select
        order_id,
        event_time,
        ingest_time,
        case status
            when 'APPROVED' then 'INSURANCE_APPROVED'
            when 'REJECTED' then 'INSURANCE_REJECTED'
            when 'PRIOR_AUTH_REQUIRED' then 'PRIOR_AUTH_REQUIRED'
        end as stage,
        2 as stage_rank
    from validation_events
    union all
    select order_id, event_time, ingest_time, 'FILLED' as stage, 3 as stage_rank
    from filled_events
    union all
    select order_id, event_time, ingest_time, 'SHIPPED' as stage, 4 as stage_rank
    from shipped_events
    union all
    select order_id, event_time, ingest_time, 'DELIVERED' as stage, 5 as stage_rank
    from delivered_events
    union all
    select order_id, event_time, ingest_time, 'CANCELLED' as stage, 6 as stage_rank
    from cancelled_events
),

current_stage as (
    {{ pf_pick_one('lifecycle_events', 'order_id', 'event_time desc, stage_rank desc, ingest_time desc') }}
),

ingest_watermark as (
    select order_id, max(ingest_time) as last_ingest_time
    from lifecycle_events
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
    coalesce(validation_summary.insurance_validations, 0) as insurance_validations,
    coalesce(validation_summary.prior_auth_required, false) as prior_auth_required,

    latest_fill.event_time as filled_at,
    latest_fill.lot_number,
    latest_fill.pharmacist_id,

    latest_shipment.event_time as shipped_at,
    latest_shipment.shipment_id,
    latest_shipment.carrier_id,

    latest_delivery.event_time as delivered_at,

    latest_cancellation.event_time as cancelled_at,
    latest_cancellation.reason as cancel_reason,

    current_stage.stage as current_status,
    current_stage.event_time as status_changed_at,
    {{ pf_hours_between('first_placement.event_time', 'latest_delivery.event_time') }} as hours_to_deliver,

    pharmacy.facility_sk as pharmacy_sk,
    pharmacy.region as pharmacy_region,
    product.product_sk,
    payer.payer_sk,
    ingest_watermark.last_ingest_time
from orders
left join first_placement on first_placement.order_id = orders.order_id
left join latest_validation on latest_validation.order_id = orders.order_id
left join validation_summary on validation_summary.order_id = orders.order_id
left join latest_fill on latest_fill.order_id = orders.order_id
left join latest_shipment on latest_shipment.order_id = orders.order_id
left join latest_delivery on latest_delivery.order_id = orders.order_id
left join latest_cancellation on latest_cancellation.order_id = orders.order_id
left join current_stage on current_stage.order_id = orders.order_id
left join ingest_watermark on ingest_watermark.order_id = orders.order_id
{{ pf_join_version('dim_facility', 'pharmacy', 'facility_id', 'first_placement.pharmacy_id', 'first_placement.event_time') }}
{{ pf_join_version('dim_product', 'product', 'ndc', 'coalesce(first_placement.ndc, latest_fill.ndc)', 'coalesce(first_placement.event_time, latest_fill.event_time)') }}
{{ pf_join_version('dim_payer', 'payer', 'payer_id', 'first_placement.payer_id', 'first_placement.event_time') }}
