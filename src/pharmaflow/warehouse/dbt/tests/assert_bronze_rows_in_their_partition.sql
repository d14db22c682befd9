-- Every bronze row sits in the partition of its own event type (event_type=<type>/...), so the
-- silver table of a type sees all and only the events of that type.
{%- for event_type in pf_event_types() %}
select '{{ event_type }}' as partition_event_type, event_type, event_id
from {{ source('bronze', pf_event_table_name(event_type)) }}
where event_type <> '{{ event_type }}'
{% if not loop.last %}union all{% endif %}
{%- endfor %}
