{#
  Shared pieces of the silver models: dedupe, envelope and provenance columns.
#}

{#
  Deduplicate bronze rows by event_id. The same event can arrive more than once (producer retry,
  Kafka redelivery, a replayed file): keep the copy ingested first, then the lowest offset
  (line number for files); source_uri / partition / batch only make the choice deterministic.
#}
{% macro pf_dedupe_events(relation) -%}
    select *
    from (
        select
            {{ relation }}.*,
            row_number() over (
                partition by event_id
                order by ingest_time, source_offset, source_uri, source_partition, batch_id
            ) as dedupe_rank
        from {{ relation }}
    ) ranked
    where dedupe_rank = 1
{%- endmacro %}

{% macro pf_envelope_columns() -%}
    event_id,
    event_type,
    event_version,
    event_time,
    source_system,
    trace_id,
    key,
    ingest_time
{%- endmacro %}

{# Provenance. The ingest batch is `ingest_batch_id` (manufacturing payloads have their own batch_id). #}
{% macro pf_provenance_columns() -%}
    source,
    source_uri,
    source_partition,
    source_offset,
    batch_id as ingest_batch_id
{%- endmacro %}

{#
  The whole silver model of one event type: its committed bronze rows, deduplicated by
  event_id, the JSON payload parsed once into typed columns, then envelope, payload and
  provenance columns. Each silver model only declares its payload columns and calls this.

  Rows that break a rule of the model (macros/set_aside.sql: derived from silver.yml's tests
  and the payload column types) are left out; silver_rejected lists them. The payload column
  list is kept in the model's meta (`pf_payload_columns`) for silver_rejected to judge with.

  Incremental (macros/incremental.sql): a run reads only the bronze batches no row of the
  table or of silver._rejected comes from (bronze._unread_batches, taken when the run starts),
  and appends the events whose event_id neither holds yet.
#}
{% macro pf_silver_select(event_type, payload_columns) -%}
{%- do config(meta={'pf_payload_columns': payload_columns}) -%}
{%- set checks = pf_set_aside_checks(model.name, payload_columns) -%}
{%- set rejected = pf_rejected_relation() if is_incremental() and execute else none -%}
with bronze_events as (
    select bronze_rows.*, {{ pf_set_aside_event_dup() }}
    from {{ pf_bronze_unread(event_type) }} as bronze_rows
),

deduped as (
    {{ pf_dedupe_events('bronze_events') }}
),

parsed as (
    select
        deduped.*,
        {{ pf_json_parse('payload', payload_columns) }} as p,
        {{ pf_set_aside_parse(payload_columns) }} as pf_keys
    from deduped
    {%- if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as already_loaded
        where already_loaded.event_id = deduped.event_id
    )
    {%- if rejected is not none %}
      and not exists (
        select 1 from {{ rejected }} as set_aside
        where set_aside.model = '{{ model.name }}' and set_aside.event_id = deduped.event_id
    )
    {%- endif %}
    {%- endif %}
),

checked as (
    select parsed.*, {{ pf_set_aside_raw(payload_columns) }}
    from parsed
),

judged as (
    select checked.*, {{ pf_set_aside_rule(checks) }} as pf_rule
    from checked
)

select
    {{ pf_envelope_columns() }},
    {{- pf_payload_columns('p', payload_columns) }},
    {{ pf_provenance_columns() }}
from judged
where pf_rule is null
{%- endmacro %}
