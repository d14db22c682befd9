{#
  gold.dim_facility: one row per facility (plant, distribution centre, pharmacy), from the
  `facilities` reference seed.
#}

with facilities as (
    select * from {{ ref('facilities') }}
)

select
    facility_id,
    facility_type,
    name as facility_name,
    region,
    state
from facilities
