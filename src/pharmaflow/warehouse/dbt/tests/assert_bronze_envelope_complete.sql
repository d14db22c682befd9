-- Bronze rows carry a complete envelope (ingest validated it): event_id, event_type,
-- event_version, event_time, key, payload, ingest_time and batch_id are never null.
-- Returns, per event type, the number of rows with a missing envelope field.
with incomplete as (
{%- for event_type in pf_event_types() %}
    select '{{ event_type }}' as partition_event_type, count(*) as incomplete_rows
    from {{ source('bronze', pf_event_table_name(event_type)) }}
    where event_id is null
       or event_type is null
       or event_version is null
       or event_time is null
       or key is null
       or payload is null
       or ingest_time is null
       or batch_id is null
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
)

select *
from incomplete
where incomplete_rows > 0
