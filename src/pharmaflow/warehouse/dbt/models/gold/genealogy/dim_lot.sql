{#
  gold.dim_lot: one row per lot (lot_number) with the batch that made it, the batch's QA
  outcome, and how far the lot travelled: the first thing a recall coordinator looks at, and
  what `pharmaflow trace` reads to tell a known lot from a typo.

  Business rules:
    * The lots are every lot named by a batch (gold.fact_batch_production.lot_number, i.e. the
      latest status event of the batch), by a shipment, or by a fill (gold.lot_genealogy): a
      lot made but not yet shipped is here with zero links; a lot made before the data window
      is here without a batch.
    * batch_id: the lowest batch_id naming the lot (the same rule as lot_genealogy);
      batch_count > 1 flags a lot number reused by several batches (a data problem to chase).
    * Batch attributes (product, plant, final_status, quality_flag, lab pass rate) are those
      of gold.fact_batch_production; ndc falls back to the genealogy's (the fills' product).
    * Counts come from gold.lot_genealogy: shipments by leg, orders (every order dispensed
      from the lot), distinct patient keys, units dispensed.
#}

with batches as (
    select * from {{ ref('fact_batch_production') }}
),

genealogy as (
    select * from {{ ref('lot_genealogy') }}
),

lot_batches as (
    select
        lot_number,
        min(batch_id) as batch_id,
        count(*) as batch_count
    from batches
    where lot_number is not null
    group by lot_number
),

link_summary as (
    select
        lot_number,
        max(ndc) as ndc,
        {{ pf_count_if("link_type = 'SHIPMENT'") }} as shipments,
        {{ pf_count_if("leg = 'PLANT_TO_DC'") }} as shipments_plant_to_dc,
        {{ pf_count_if("leg = 'DC_TO_PHARMACY'") }} as shipments_dc_to_pharmacy,
        {{ pf_count_if("link_type = 'SHIPMENT' and destination_facility_type = 'PATIENT'") }}
            as shipments_to_patients,
        {{ pf_count_if("link_type = 'ORDER'") }} as orders,
        count(distinct patient_key) as patients,
        cast(sum(case when link_type = 'ORDER' then quantity end) as {{ dbt.type_bigint() }})
            as units_dispensed,
        min(case when link_type = 'SHIPMENT' then linked_at end) as first_shipped_at,
        max(linked_at) as last_linked_at
    from genealogy
    group by lot_number
),

lots as (
    select lot_number from lot_batches
    union distinct
    select lot_number from link_summary
)

select
    lots.lot_number,
    lot_batches.batch_id,
    coalesce(lot_batches.batch_count, 0) as batch_count,
    coalesce(batches.ndc, link_summary.ndc) as ndc,
    batches.site_id,
    batches.final_status,
    batches.quality_flag,
    batches.lab_pass_rate,
    batches.completed_at,
    coalesce(link_summary.shipments, 0) as shipments,
    coalesce(link_summary.shipments_plant_to_dc, 0) as shipments_plant_to_dc,
    coalesce(link_summary.shipments_dc_to_pharmacy, 0) as shipments_dc_to_pharmacy,
    coalesce(link_summary.shipments_to_patients, 0) as shipments_to_patients,
    coalesce(link_summary.orders, 0) as orders,
    coalesce(link_summary.patients, 0) as patients,
    coalesce(link_summary.units_dispensed, 0) as units_dispensed,
    link_summary.first_shipped_at,
    link_summary.last_linked_at
from lots
left join lot_batches
    on lot_batches.lot_number = lots.lot_number
left join batches
    on batches.batch_id = lot_batches.batch_id
left join link_summary
    on link_summary.lot_number = lots.lot_number
