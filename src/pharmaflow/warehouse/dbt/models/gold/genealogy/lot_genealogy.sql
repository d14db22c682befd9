{#
  gold.lot_genealogy: the recall graph. One row per link of a lot to where it went, so "which
  shipments, orders and (pseudonymised) patients received lot L" is one filter on lot_number.

  Grain: (lot_number, link_type, link_id), key genealogy_key.
    * link_type SHIPMENT, link_id = shipment_id: the lot travelled in the shipment (it is in
      the shipment's lot_numbers). Every leg: plant -> DC, DC -> pharmacy, pharmacy -> patient
      (no destination facility; the shipment names the order, hence the patient).
    * link_type ORDER, link_id = order_id: the pharmacy dispensed the lot to the order
      (pharmacy.order.filled.lot_number); the patient is the order's patient_key.

  Business rules ("first"/"latest" by EVENT time; ties by ingest time, then event_id):
    * The batch of a lot: the batch whose LATEST status event names the lot (the lot column of
      gold.fact_batch_production). Should several batches name the same lot, the lowest
      batch_id is shown here and gold.dim_lot.batch_count says how many there are. Lots made
      before the data window have no batch events: batch_id is null.
    * ndc: the batch's product, else (no batch) the product of the fills from the lot.
    * A shipment: its LATEST created event (an amended shipment replaces its lot list);
      delivered_at = gold.fact_shipment.delivered_at (its FIRST delivery, deliveries set aside
      in gold._rejected left out), so both tables say the same.
    * Facility types from reference.facilities; a shipment without destination goes to a
      PATIENT. leg = <origin type>_TO_<destination type> (UNKNOWN for a facility the reference
      data does not know); DISPENSE for ORDER rows.
    * Every fill counts: an order re-filled from another lot stays linked to both lots (a
      recall errs on the side of reaching the patient); is_current_fill marks the lot of the
      order's latest fill. Per (order, lot) the latest fill from that lot gives quantity and
      linked_at.
    * An order's patient_key and pharmacy: its FIRST placed event (null while the placement has
      not arrived); its shipment: the LATEST pharmacy.order.shipped; delivered_at:
      gold.fact_order_lifecycle.delivered_at (the FIRST delivery not set aside); cancelled_at:
      the latest cancellation. Fills are NOT subject to fact_order_lifecycle's set-aside of a
      fill timestamped before its placement: a recall must reach every pack dispensed.

  Portability: the only non-standard step, unnesting the lot_numbers list, goes through
  pf_cross_join_unnest (macros/genealogy_helpers.sql).
#}

with batch_status as (
    select * from {{ ref('silver_manufacturing_batch_status') }}
),

shipments_created as (
    select * from {{ ref('silver_logistics_shipment_created') }}
),


orders_placed as (
    select * from {{ ref('silver_pharmacy_order_placed') }}
),

orders_filled as (
    select * from {{ ref('silver_pharmacy_order_filled') }}
),

orders_shipped as (
    select * from {{ ref('silver_pharmacy_order_shipped') }}
),


orders_cancelled as (
    select * from {{ ref('silver_pharmacy_order_cancelled') }}
),

facilities as (
    select * from {{ ref('facilities') }}
),

-- lot -> batch --------------------------------------------------------------------------------

latest_batch_status as (
    {{ pf_pick_one('batch_status', 'batch_id', pf_event_order('latest')) }}
),

batch_lots as (
    select batch_id, lot_number, ndc
    from latest_batch_status
    where lot_number is not null
),

lot_batch as (
    {{ pf_pick_one('batch_lots', 'lot_number', 'batch_id') }}
),

lot_fill_products as (
    select lot_number, min(ndc) as ndc
    from orders_filled
    where lot_number is not null
    group by lot_number
),

-- shipments -----------------------------------------------------------------------------------

latest_shipment as (
    {{ pf_pick_one('shipments_created', 'shipment_id', pf_event_order('latest')) }}
),

shipment_lots as (
    select distinct
        shipment.shipment_id,
        lot_number,
        shipment.origin_facility_id,
        shipment.destination_facility_id,
        shipment.order_id,
        shipment.carrier_id,
        shipment.cold_chain,
        shipment.event_time as created_at
    from latest_shipment as shipment
    {{ pf_cross_join_unnest('shipment.lot_numbers', 'lot_number') }}
),

shipment_delivery as (
    select shipment_id, delivered_at
    from {{ ref('fact_shipment') }}
    where delivered_at is not null
),

-- orders --------------------------------------------------------------------------------------

first_placement as (
    {{ pf_pick_one('orders_placed', 'order_id', pf_event_order('first')) }}
),

latest_fill as (
    {{ pf_pick_one('orders_filled', 'order_id', pf_event_order('latest')) }}
),

lot_fills as (
    select * from orders_filled where lot_number is not null
),

latest_fill_per_lot as (
    {{ pf_pick_one('lot_fills', 'order_id, lot_number', pf_event_order('latest')) }}
),

latest_order_shipment as (
    {{ pf_pick_one('orders_shipped', 'order_id', pf_event_order('latest')) }}
),

order_delivery as (
    select order_id, delivered_at
    from {{ ref('fact_order_lifecycle') }}
    where delivered_at is not null
),

order_cancellation as (
    select order_id, max(event_time) as cancelled_at
    from orders_cancelled
    group by order_id
),

-- links ---------------------------------------------------------------------------------------

shipment_links as (
    select
        shipment_lots.lot_number,
        'SHIPMENT' as link_type,
        shipment_lots.shipment_id as link_id,
        shipment_lots.shipment_id,
        shipment_lots.origin_facility_id,
        origin.facility_type as origin_facility_type,
        shipment_lots.destination_facility_id,
        case
            when shipment_lots.destination_facility_id is null then 'PATIENT'
            else destination.facility_type
        end as destination_facility_type,
        shipment_lots.carrier_id,
        shipment_lots.cold_chain,
        shipment_lots.order_id,
        first_placement.patient_key,
        cast(null as {{ dbt.type_int() }}) as quantity,
        shipment_lots.created_at as linked_at,
        shipment_delivery.delivered_at,
        cast(null as {{ dbt.type_timestamp() }}) as cancelled_at,
        cast(null as {{ dbt.type_boolean() }}) as is_current_fill
    from shipment_lots
    left join facilities as origin
        on origin.facility_id = shipment_lots.origin_facility_id
    left join facilities as destination
        on destination.facility_id = shipment_lots.destination_facility_id
    left join shipment_delivery
        on shipment_delivery.shipment_id = shipment_lots.shipment_id
    left join first_placement
        on first_placement.order_id = shipment_lots.order_id
),

order_links as (
    select
        fill.lot_number,
        'ORDER' as link_type,
        fill.order_id as link_id,
        latest_order_shipment.shipment_id,
        first_placement.pharmacy_id as origin_facility_id,
        pharmacy.facility_type as origin_facility_type,
        cast(null as {{ dbt.type_string() }}) as destination_facility_id,
        'PATIENT' as destination_facility_type,
        latest_order_shipment.carrier_id,
        cast(null as {{ dbt.type_boolean() }}) as cold_chain,
        fill.order_id,
        first_placement.patient_key,
        fill.quantity,
        fill.event_time as linked_at,
        order_delivery.delivered_at,
        order_cancellation.cancelled_at,
        coalesce(latest_fill.lot_number = fill.lot_number, false) as is_current_fill
    from latest_fill_per_lot as fill
    left join first_placement
        on first_placement.order_id = fill.order_id
    left join facilities as pharmacy
        on pharmacy.facility_id = first_placement.pharmacy_id
    left join latest_fill
        on latest_fill.order_id = fill.order_id
    left join latest_order_shipment
        on latest_order_shipment.order_id = fill.order_id
    left join order_delivery
        on order_delivery.order_id = fill.order_id
    left join order_cancellation
        on order_cancellation.order_id = fill.order_id
),

links as (
    select * from shipment_links
    union all
    select * from order_links
)

select
    {{ pf_surrogate_key(['links.lot_number', 'links.link_type', 'links.link_id']) }} as genealogy_key,
    links.lot_number,
    lot_batch.batch_id,
    coalesce(lot_batch.ndc, lot_fill_products.ndc) as ndc,
    links.link_type,
    links.link_id,
    case
        when links.link_type = 'ORDER' then 'DISPENSE'
        else coalesce(links.origin_facility_type, 'UNKNOWN')
            || '_TO_' || coalesce(links.destination_facility_type, 'UNKNOWN')
    end as leg,
    links.shipment_id,
    links.origin_facility_id,
    links.origin_facility_type,
    links.destination_facility_id,
    links.destination_facility_type,
    links.carrier_id,
    links.cold_chain,
    links.order_id,
    links.patient_key,
    links.quantity,
    links.linked_at,
    links.delivered_at,
    links.cancelled_at,
    links.is_current_fill
from links
left join lot_batch
    on lot_batch.lot_number = links.lot_number
left join lot_fill_products
    on lot_fill_products.lot_number = links.lot_number
