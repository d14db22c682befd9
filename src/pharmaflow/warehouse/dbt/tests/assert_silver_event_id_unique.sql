-- Nothing doubled: an event_id appears once in the whole of silver, across all event types
-- (per-table uniqueness is tested in silver.yml; this also catches an event filed under two types).
with all_events as (
{%- for event_type in pf_event_types() %}
    select event_id, '{{ event_type }}' as event_type
    from {{ ref('silver_' ~ pf_event_table_name(event_type)) }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
)

select event_id, count(*) as copies
from all_events
group by event_id
having count(*) > 1
