-- Nothing lost, nothing doubled: per event type, every distinct bronze event_id is either a
-- silver row (one each) or set aside in silver._rejected (macros/set_aside.sql), never both.
-- Returns the event types whose counts differ, or that hold an event in both.
with counts as (
{%- for event_type in pf_event_types() %}
    {%- set name = pf_event_table_name(event_type) %}
    select
        '{{ event_type }}' as event_type,
        (select count(distinct event_id) from {{ source('bronze', name) }}) as bronze_distinct_events,
        (select count(*) from {{ ref('silver_' ~ name) }}) as silver_rows,
        (select count(distinct event_id) from {{ ref('silver_rejected') }}
         where model = 'silver_{{ name }}') as set_aside_events,
        (select count(*) from {{ ref('silver_' ~ name) }} as kept
         where kept.event_id in (select event_id from {{ ref('silver_rejected') }})) as in_both
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
)

select *
from counts
where bronze_distinct_events <> silver_rows + set_aside_events
   or in_both > 0
