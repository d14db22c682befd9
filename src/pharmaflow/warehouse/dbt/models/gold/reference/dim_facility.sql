{#
  gold.dim_facility: one row per VERSION of a facility (plant, distribution centre, pharmacy),
  SCD type 2 from the snapshot of the `facilities` seed (macros/history.sql).

  A facility that moves to another region gets a second version valid from the change's
  updated_at; facts join the version valid at their event time (pf_join_version), so last
  year's figures stay on last year's region. The first version of each facility is valid from
  the beginning of time; the current one until 9999-12-31.

  timezone: the facility's IANA time zone from the reference file, kept only when the engine
  knows it (else null, and a warning from the seed test): gold computes the local business day
  with coalesce(timezone, 'UTC').
#}

with versions as (
    {{ pf_scd2_versions('facilities_history', 'facility_id') }}
),

known_timezones as (
    {{ pf_known_timezones() }}
)

select
    {{ pf_surrogate_key(['facility_id', 'dbt_valid_from']) }} as facility_sk,
    facility_id,
    facility_type,
    name as facility_name,
    region,
    state,
    case
        when timezone in (select name from known_timezones) then timezone
    end as timezone,
    version,
    {{ pf_scd2_validity() }}
from versions
