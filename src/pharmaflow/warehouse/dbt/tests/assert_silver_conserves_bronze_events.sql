-- Nothing lost, nothing doubled: per event type, silver has exactly one row per distinct
-- event_id in bronze. Returns the event types whose counts differ.
with counts as (
{%- for event_type in pf_event_types() %}
    {%- set name = pf_event_table_name(event_type) %}
    select
        '{{ event_type }}' as event_type,
        (select count(distinct event_id) from {{ source('bronze', name) }}) as bronze_distinct_events,
        (select count(*) from {{ ref('silver_' ~ name) }}) as silver_rows
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
)

select *
from counts
where bronze_distinct_events <> silver_rows
