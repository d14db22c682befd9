{#
  The column holds IANA time-zone names the warehouse engine knows (null passes): a facility's
  local business day is computed with it. Warn by default: gold falls back to UTC for a zone
  it cannot use (dim_facility.timezone is null then), so a typo in a reference file costs a
  local day, not the build.
#}
{% test pf_known_timezone(model, column_name) %}
select {{ column_name }} as unknown_timezone
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} not in ({{ pf_known_timezones() }})
{% endtest %}
