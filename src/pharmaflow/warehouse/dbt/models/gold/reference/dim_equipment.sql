{#
  gold.dim_equipment: one row per piece of manufacturing equipment, with the plant it belongs to
  (the plant's current name).
#}

with equipment as (
    select * from {{ ref('equipment') }}
),

facilities as (
    select * from {{ ref('dim_facility') }} where is_current
)

select
    equipment.equipment_id,
    equipment.site_id,
    facilities.facility_name as site_name,
    equipment.equipment_type,
    equipment.name as equipment_name,
    equipment.capacity_kg
from equipment
left join facilities
    on facilities.facility_id = equipment.site_id
