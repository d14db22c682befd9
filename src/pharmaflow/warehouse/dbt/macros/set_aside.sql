{#
  Set-aside rows: what silver refuses instead of failing the build.

  Bronze is immutable and older ingest versions let through events the current validator
  refuses (a null inside a list, an int DuckDB cannot read, a date outside the calendar, a
  repeated JSON key). Such an event would fail a silver test on every later build, and gold
  with it. So each silver model judges every row with the rules below; a row that breaks one is
  left out of silver and listed in `silver._rejected` (model silver_rejected) with the rule and
  a reason, never a payload value (it may be PHI).

  The rules of a model are not written per model: they come from
    * its silver.yml tests (the contract): `not_null` -> missing_value / unreadable_value,
      `accepted_values` -> not_accepted_value, `pf_value_between` -> out_of_range; read from
      the manifest (`graph`) at run time, so a test added to silver.yml is a rule at once;
    * its payload column list (the model file): every payload column -> unreadable_value (a
      value present in the JSON that does not read as the column's type), `string_list` ->
      null_list_element, `timestamp` / `date` (and event_time) -> outside_calendar
      (macros/calendar.sql), every object level read -> duplicate_key.
  One rule per row: the first that applies, in this order (pf_set_aside_checks): duplicate_key,
  missing_value, unreadable_value, null_list_element, outside_calendar, not_accepted_value,
  out_of_range.

  Cost (DuckDB): the payload is parsed by json_transform as before, plus one json_keys call
  on it for the repeated-key rule; the whole event is parsed again only when its text holds
  '"payload"' twice. Raw value types (json_type) are read only for rows where a column read
  as null although its key is present. silver_rejected parses only the rows silver left out.
#}

{% macro pf_envelope_column_names() -%}
    {{ return(['event_id', 'event_type', 'event_version', 'event_time', 'source_system',
               'trace_id', 'key', 'ingest_time']) }}
{%- endmacro %}

{#
  The contract of a silver model as silver.yml's tests state it:
  {'required': [column], 'accepted': [(column, values, quote)], 'ranges': [(column, min, max)]},
  each in test id order, i.e. by column (the manifest's own order is not stable, and the
  first rule that applies must not change between builds). Empty at parse time (no graph).
#}
{% macro pf_silver_contract(model_name) -%}
    {%- set contract = {'required': [], 'accepted': [], 'ranges': []} -%}
    {%- if execute -%}
        {%- set attached = 'model.' ~ project_name ~ '.' ~ model_name -%}
        {%- set tests = [] -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'test' and node.attached_node == attached
                   and node.test_metadata and node.column_name -%}
                {%- do tests.append(node) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- for node in tests | sort(attribute='unique_id') -%}
            {%- set kwargs = node.test_metadata.kwargs or {} -%}
            {%- set name = node.test_metadata.name -%}
            {%- if name == 'not_null' -%}
                {%- do contract.required.append(node.column_name) -%}
            {%- elif name == 'accepted_values' -%}
                {%- do contract.accepted.append((node.column_name, kwargs['values'], kwargs.get('quote', true))) -%}
            {%- elif name == 'pf_value_between' -%}
                {%- do contract.ranges.append((node.column_name, kwargs.get('min_value'), kwargs.get('max_value'))) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(contract) }}
{%- endmacro %}

{#
  silver_rejected reads bronze rows before it knows which it needs (an anti-join with silver):
  on DuckDB it carries `event_json` through the join and extracts the payload only for the rows
  left (the bronze view would extract it for every row); elsewhere `payload` is a column.
  (bronze column to carry, expression of the payload over it).
#}
{% macro pf_late_payload() -%}
    {{ return(adapter.dispatch('pf_late_payload', 'pharmaflow')()) }}
{%- endmacro %}

{% macro default__pf_late_payload() -%}
    {{ return(('payload', 'payload')) }}
{%- endmacro %}

{% macro duckdb__pf_late_payload() -%}
    {{ return(('event_json', "cast(json_extract(event_json, '$.payload') as varchar)")) }}
{%- endmacro %}

{# The payload column list with the JSON path of every column spelled out (third element). #}
{% macro pf_sourced_columns(payload_columns) -%}
    {%- set out = [] -%}
    {%- for col in payload_columns -%}
        {%- do out.append((col[0], col[1], col[2] if col | length > 2 else col[0])) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}

{#
  The JSON object levels of the payload the columns are read from, as paths ('' = the payload
  itself, then nested objects such as 'patient'). pf_keys[i] holds the keys of level i.
#}
{% macro pf_key_levels(payload_columns) -%}
    {%- set levels = [''] -%}
    {%- for col in pf_sourced_columns(payload_columns) -%}
        {%- set parts = col[2].split('.') -%}
        {%- for i in range(1, parts | length) -%}
            {%- set level = parts[:i] | join('.') -%}
            {%- if level not in levels -%}
                {%- do levels.append(level) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(levels) }}
{%- endmacro %}

{#
  Extra per-row columns the rules read, selected next to the parsed payload `p` (same CTE):
  `pf_keys`. DuckDB: json_keys of the payload at every level (one call). Elsewhere: null (the
  rules there parse what they need).
#}
{% macro pf_set_aside_parse(payload_columns, payload='payload') -%}
    {{ return(adapter.dispatch('pf_set_aside_parse', 'pharmaflow')(payload_columns, payload)) }}
{%- endmacro %}

{% macro default__pf_set_aside_parse(payload_columns, payload) -%}
    cast(null as {{ dbt.type_string() }})
{%- endmacro %}

{% macro duckdb__pf_set_aside_parse(payload_columns, payload) -%}
    {%- set paths = [] -%}
    {%- for level in pf_key_levels(payload_columns) -%}
        {%- do paths.append("'$" ~ ('.' ~ level if level else '') ~ "'") -%}
    {%- endfor -%}
    json_keys({{ payload }}, [{{ paths | join(', ') }}])
{%- endmacro %}

{#
  `pf_event_dup`, selected over bronze rows (before dedupe, so only this flag, not the event
  text, goes through the dedupe window): the event repeats its `payload` key, so bronze's
  json_extract reads the first copy where ingest read the last. DuckDB: json_keys of the whole
  event, read only when its text holds '"payload"' twice (a key, or a string value that is
  exactly "payload": quotes inside strings are escaped). Elsewhere: null (bronze there was
  loaded with DuckDB's payload).
#}
{% macro pf_set_aside_event_dup() -%}
    {{ return(adapter.dispatch('pf_set_aside_event_dup', 'pharmaflow')()) }}
{%- endmacro %}

{% macro default__pf_set_aside_event_dup() -%}
    cast(null as {{ dbt.type_boolean() }}) as pf_event_dup
{%- endmacro %}

{% macro duckdb__pf_set_aside_event_dup() -%}
    case when contains(substr(event_json, strpos(event_json, '"payload"') + 9), '"payload"')
        then list_unique(json_keys(event_json)) < len(json_keys(event_json)) end as pf_event_dup
{%- endmacro %}

{#
  Per-row column `pf_raw`, selected over the CTE holding `p` and `pf_keys`. DuckDB: the JSON
  types of every payload column's raw value (json_type: 'NULL' for a JSON null, null when
  absent), read only for rows where some column read as null although its key is present (a
  JSON null, or a value that does not convert): the other rows skip that parse. Elsewhere: null.
#}
{% macro pf_set_aside_raw(payload_columns, parsed='p') -%}
    {{ return(adapter.dispatch('pf_set_aside_raw', 'pharmaflow')(payload_columns, parsed)) }}
{%- endmacro %}

{% macro default__pf_set_aside_raw(payload_columns, parsed) -%}
    cast(null as {{ dbt.type_string() }}) as pf_raw
{%- endmacro %}

{% macro duckdb__pf_set_aside_raw(payload_columns, parsed) -%}
    {%- set levels = pf_key_levels(payload_columns) -%}
    {%- set conditions = [] -%}
    {%- set paths = [] -%}
    {%- for col in pf_sourced_columns(payload_columns) -%}
        {%- set parts = col[2].split('.') -%}
        {%- set level_index = levels.index(parts[:-1] | join('.')) + 1 -%}
        {%- do conditions.append('(' ~ pf_struct_field(parsed, col) ~ ' is null and list_contains(pf_keys['
                                 ~ level_index ~ "], '" ~ parts[-1] ~ "'))") -%}
        {%- do paths.append("'$." ~ col[2] ~ "'") -%}
    {%- endfor -%}
    {%- if conditions -%}
    case when {{ conditions | join('\n            or ') }}
        then json_type(payload, [{{ paths | join(', ') }}]) end as pf_raw
    {%- else -%}
    cast(null as varchar[]) as pf_raw
    {%- endif -%}
{%- endmacro %}

{# DuckDB: the field of the json_transform struct, before pf_json_field converts a timestamp
   string (a null test there cannot raise). #}
{% macro pf_struct_field(parsed, col) -%}
    {{ parsed }}."{{ col[2].split('.') | join('"."') }}"
{%- endmacro %}

{# ---- per-check conditions (dispatched); `col` is a sourced column, `i` its 1-based index ---- #}

{#- the JSON object at key level `i` (path `level`) repeats a key -#}
{% macro pf_check_duplicate_key(level, i) -%}
    {{ return(adapter.dispatch('pf_check_duplicate_key', 'pharmaflow')(level, i)) }}
{%- endmacro %}

{% macro duckdb__pf_check_duplicate_key(level, i) -%}
    list_unique(pf_keys[{{ i }}]) < len(pf_keys[{{ i }}])
{%- endmacro %}

{#- postgres: jsonb keeps one copy of a repeated key; the json type keeps the text as it came -#}
{% macro default__pf_check_duplicate_key(level, i) -%}
    {%- set node = 'cast(payload as json)' -%}
    {%- if level -%}
        {%- set node = '(' ~ node ~ " #> '{" ~ (level.split('.') | join(',')) ~ "}')" -%}
    {%- endif -%}
    case when json_typeof({{ node }}) = 'object' then (
        select count(*) <> count(distinct object_keys.k)
        from json_object_keys({{ node }}) as object_keys (k)
    ) end
{%- endmacro %}

{#- a required payload column has no value (absent, or a JSON null) -#}
{% macro pf_check_missing(parsed, col, i) -%}
    {{ return(adapter.dispatch('pf_check_missing', 'pharmaflow')(parsed, col, i)) }}
{%- endmacro %}

{% macro duckdb__pf_check_missing(parsed, col, i) -%}
    ({{ pf_struct_field(parsed, col) }} is null and coalesce(pf_raw[{{ i }}] = 'NULL', true))
{%- endmacro %}

{% macro default__pf_check_missing(parsed, col, i) -%}
    ({{ parsed }} #>> '{{ '{' ~ (col[2].split('.') | join(',')) ~ '}' }}') is null
{%- endmacro %}

{#- a payload column holds a value that does not read as its type (it would become null) -#}
{% macro pf_check_unreadable(parsed, col, i) -%}
    {{ return(adapter.dispatch('pf_check_unreadable', 'pharmaflow')(parsed, col, i)) }}
{%- endmacro %}

{% macro duckdb__pf_check_unreadable(parsed, col, i) -%}
    {%- set field = pf_struct_field(parsed, col) -%}
    {%- if col[1] == 'string' -%}
    false
    {%- elif col[1] == 'timestamp' -%}
    {#- the same conversion as pf_json_field's, with try_cast: null where it would raise -#}
    ({{ field }} is not null and ({{ pf_cast_timestamp_utc(field) | replace('cast(', 'try_cast(') }}) is null)
    {%- else -%}
    ({{ field }} is null and coalesce(pf_raw[{{ i }}] <> 'NULL', false))
    {%- endif -%}
{%- endmacro %}

{#- postgres: the text value checked by shape before pf_json_field's cast (which would raise) -#}
{% macro default__pf_check_unreadable(parsed, col, i) -%}
    {%- set json_path = "'{" ~ (col[2].split('.') | join(',')) ~ "}'" -%}
    {%- set text = '(' ~ parsed ~ ' #>> ' ~ json_path ~ ')' -%}
    {%- set number = "'^\\s*-?[0-9]+(\\.[0-9]*)?([eE][-+]?[0-9]+)?\\s*$'" -%}
    {%- if col[1] == 'string' -%}
    false
    {%- elif col[1] == 'string_list' -%}
    coalesce(jsonb_typeof({{ parsed }} #> {{ json_path }}) not in ('array', 'null'), false)
    {%- elif col[1] in ('int', 'bigint') -%}
    {%- set bound = '2147483647' if col[1] == 'int' else '9223372036854775807' -%}
    ({{ text }} is not null and (case when {{ text }} ~ {{ number }}
        then round(cast({{ text }} as numeric)) not between -{{ bound }} - 1 and {{ bound }}
        else true end))
    {%- elif col[1] == 'decimal' -%}
    ({{ text }} is not null and (case when {{ text }} ~ {{ number }}
        then abs(round(cast({{ text }} as numeric), 2)) >= 10000000000 else true end))
    {%- elif col[1] == 'double' -%}
    ({{ text }} is not null and not {{ text }} ~ {{ number }})
    {%- elif col[1] == 'boolean' -%}
    ({{ text }} is not null and {{ text }} not in ('true', 'false'))
    {%- elif col[1] == 'date' -%}
    ({{ text }} is not null and not {{ text }} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')
    {%- elif col[1] == 'timestamp' -%}
    ({{ text }} is not null and not {{ text }} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}')
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}

{#- a list column holds a null element -#}
{% macro pf_check_list_has_null(expr) -%}
    {{ return(adapter.dispatch('pf_check_list_has_null', 'pharmaflow')(expr)) }}
{%- endmacro %}

{% macro duckdb__pf_check_list_has_null(expr) -%}
    len({{ expr }}) > list_count({{ expr }})
{%- endmacro %}

{% macro default__pf_check_list_has_null(expr) -%}
    array_position({{ expr }}, null) is not null
{%- endmacro %}

{% macro pf_sql_string(text) -%}
    '{{ text | string | replace("'", "''") }}'
{%- endmacro %}

{#
  The checks of one silver model, in rule order: a list of (rule, condition SQL, reason). The
  conditions read the columns of the CTE that holds the bronze columns, `p` (parsed payload),
  `pf_keys` and `pf_raw`. A condition that is null counts as passed.
#}
{% macro pf_set_aside_checks(model_name, payload_columns, parsed='p') -%}
    {%- set contract = pf_silver_contract(model_name) -%}
    {%- set columns = pf_sourced_columns(payload_columns) -%}
    {%- set by_name = {} -%}
    {%- for col in columns -%}
        {%- do by_name.update({col[0]: (col, loop.index)}) -%}
    {%- endfor -%}
    {%- set envelope = pf_envelope_column_names() -%}
    {%- set checks = [('duplicate_key', 'pf_event_dup',
        'the event repeats its payload key (readers disagree on which copy counts)')] -%}

    {%- for level in pf_key_levels(payload_columns) -%}
        {%- do checks.append(('duplicate_key', pf_check_duplicate_key(level, loop.index),
            'the JSON object at payload' ~ ('.' ~ level if level else '') ~ ' repeats a key (readers disagree on which copy counts)')) -%}
    {%- endfor -%}

    {%- for name in contract.required -%}
        {%- if name in by_name -%}
            {%- set col, i = by_name[name] -%}
            {%- do checks.append(('missing_value', pf_check_missing(parsed, col, i),
                'required column ' ~ name ~ ' has no value (payload.' ~ col[2] ~ ' absent or null)')) -%}
        {%- elif name in envelope -%}
            {%- do checks.append(('missing_value', name ~ ' is null',
                'required envelope column ' ~ name ~ ' is null')) -%}
        {%- endif -%}
    {%- endfor -%}

    {%- for col in columns -%}
        {%- set check = pf_check_unreadable(parsed, col, loop.index) | trim -%}
        {%- if check != 'false' -%}
            {%- do checks.append(('unreadable_value', check,
                'payload.' ~ col[2] ~ ' does not read as ' ~ col[1] ~ ' (column ' ~ col[0] ~ ')')) -%}
        {%- endif -%}
    {%- endfor -%}

    {%- for col in columns if col[1] == 'string_list' -%}
        {%- do checks.append(('null_list_element',
            pf_check_list_has_null(pf_json_field(parsed, col[2], col[1])),
            'list column ' ~ col[0] ~ ' holds a null element')) -%}
    {%- endfor -%}

    {%- set first_day = "cast('" ~ pf_calendar_start() ~ "' as date)" -%}
    {%- set last_day = "cast('" ~ pf_calendar_end() ~ "' as date)" -%}
    {%- set dated = [('event_time', 'event_time')] -%}
    {%- for col in columns if col[1] in ('timestamp', 'date') -%}
        {%- do dated.append((col[0], pf_json_field(parsed, col[2], col[1]))) -%}
    {%- endfor -%}
    {%- for name, expr in dated -%}
        {%- do checks.append(('outside_calendar',
            '(cast(' ~ expr ~ ' as date) < ' ~ first_day ~ ' or cast(' ~ expr ~ ' as date) > ' ~ last_day ~ ')',
            name ~ ' is outside the warehouse calendar (vars calendar_start, calendar_end)')) -%}
    {%- endfor -%}

    {%- for name, values, quote in contract.accepted -%}
        {%- set expr = pf_json_field(parsed, by_name[name][0][2], by_name[name][0][1]) if name in by_name else name -%}
        {%- set literals = [] -%}
        {%- for v in values -%}
            {%- do literals.append(pf_sql_string(v) if quote else v | string) -%}
        {%- endfor -%}
        {%- do checks.append(('not_accepted_value', expr ~ ' not in (' ~ literals | join(', ') ~ ')',
            name ~ ' is not one of the accepted values')) -%}
    {%- endfor -%}

    {%- for name, min_value, max_value in contract.ranges -%}
        {%- set expr = pf_json_field(parsed, by_name[name][0][2], by_name[name][0][1]) if name in by_name else name -%}
        {%- set parts = [] -%}
        {%- if min_value is not none -%}{%- do parts.append(expr ~ ' < ' ~ min_value) -%}{%- endif -%}
        {%- if max_value is not none -%}{%- do parts.append(expr ~ ' > ' ~ max_value) -%}{%- endif -%}
        {%- if parts -%}
            {%- do checks.append(('out_of_range', '(' ~ parts | join(' or ') ~ ')',
                name ~ ' is outside [' ~ (min_value if min_value is not none else '-inf') ~ ', '
                ~ (max_value if max_value is not none else 'inf') ~ ']')) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(checks) }}
{%- endmacro %}

{# The first rule a row breaks (null: a clean row), and its reason. #}
{% macro pf_set_aside_rule(checks) -%}
    {%- if checks | length == 0 -%}
    cast(null as {{ dbt.type_string() }})
    {%- else -%}
    case
        {%- for rule, condition, reason in checks %}
        when {{ condition }} then '{{ rule }}'
        {%- endfor %}
    end
    {%- endif -%}
{%- endmacro %}

{% macro pf_set_aside_reason(checks) -%}
    {%- if checks | length == 0 -%}
    cast(null as {{ dbt.type_string() }})
    {%- else -%}
    case
        {%- for rule, condition, reason in checks %}
        when {{ condition }} then {{ pf_sql_string(reason) }}
        {%- endfor %}
    end
    {%- endif -%}
{%- endmacro %}

{# The set-aside relation (model silver_rejected), for the silver models' own incremental
   checks (no ref: silver_rejected is built after them and reads them). #}
{% macro pf_rejected_relation() -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier='_rejected')) }}
{%- endmacro %}

{#
  silver_rejected, one event type: the rows of the bronze batches read in this run (all of
  bronze on a full refresh) whose event is neither in its silver table now nor set aside
  before, deduplicated as silver dedupes, judged with the same checks. Only those rows are
  parsed: on DuckDB the payload is read from event_json after the anti-join.
#}
{% macro pf_set_aside_select(event_type) -%}
    {%- set model_name = 'silver_' ~ pf_event_table_name(event_type) -%}
    {%- set silver = ref(model_name) -%}
    {%- set payload_columns = pf_model_payload_columns(model_name) -%}
    {%- set carried, payload_expr = pf_late_payload() -%}
    {%- set checks = pf_set_aside_checks(model_name, payload_columns) -%}
select
    event_id,
    event_type,
    cast('{{ model_name }}' as {{ dbt.type_string() }}) as model,
    pf_rule as rule,
    pf_reason as reason,
    batch_id as ingest_batch_id,
    ingest_time
from (
    with unread as (
        select
            event_id, event_type, event_version, event_time, source_system, trace_id, key,
            ingest_time, source_offset, source_uri, source_partition, batch_id, {{ carried }}
        from {{ pf_bronze_unread(event_type) }} as bronze_rows
        where not exists (
            select 1 from {{ silver }} as kept where kept.event_id = bronze_rows.event_id
        )
        {%- if is_incremental() %}
          and not exists (
            select 1 from {{ this }} as set_aside
            where set_aside.model = '{{ model_name }}' and set_aside.event_id = bronze_rows.event_id
        )
        {%- endif %}
    ),
    deduped as (
        {{ pf_dedupe_events('unread') }}
    ),
    with_payload as (
        select
            deduped.*,
            {{ pf_set_aside_event_dup() }}{{ (',\n            ' ~ payload_expr ~ ' as payload') if carried != 'payload' else '' }}
        from deduped
    ),
    parsed as (
        select
            with_payload.*,
            {{ pf_json_parse('payload', payload_columns) }} as p,
            {{ pf_set_aside_parse(payload_columns) }} as pf_keys
        from with_payload
    ),
    checked as (
        select parsed.*, {{ pf_set_aside_raw(payload_columns) }}
        from parsed
    ),
    judged as (
        select
            checked.*,
            {{ pf_set_aside_rule(checks) }} as pf_rule,
            {{ pf_set_aside_reason(checks) }} as pf_reason
        from checked
    )
    select * from judged where pf_rule is not null
) as rejected_{{ pf_event_table_name(event_type) }}
{%- endmacro %}

{# The payload column list a silver model declared (pf_silver_select stores it in the model's
   meta), read from the manifest at run time. #}
{% macro pf_model_payload_columns(model_name) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ model_name) -%}
    {%- set columns = (node.config.meta or {}).get('pf_payload_columns') if node else none -%}
    {%- if columns is none -%}
        {{ exceptions.raise_compiler_error("pharmaflow: " ~ model_name ~ " declares no payload columns (pf_silver_select stores them)") }}
    {%- endif -%}
    {{ return(columns) }}
{%- endmacro %}
