{#
  Typed extraction of the JSON `payload` text column.

  A model declares its payload columns once, as tuples (column_name, type[, json_path]):
      {% set payload_columns = [
          ('order_id', 'string'),
          ('patient_key', 'string', 'patient.patient_key'),
          ('copay_amount', 'decimal'),
      ] %}
  then parses the payload once per row and selects the columns:
      {{ pf_json_parse('payload', payload_columns) }} as p      -- in a CTE
      {{ pf_payload_columns('p', payload_columns) }}           -- in the select list

  Types: string, int, bigint, decimal (decimal(12,2): money and kg), double (measurements),
  boolean, date, timestamp (timestamp, UTC, no zone; strings with an offset or `Z` are
  converted to UTC, strings without one are taken as UTC), string_list (list of varchar).
  A value that does not convert becomes null (bronze is contract-validated by ingest).
#}

{% macro pf_json_parse(payload_col, columns) -%}
    {{ return(adapter.dispatch('pf_json_parse', 'pharmaflow')(payload_col, columns)) }}
{%- endmacro %}

{% macro pf_payload_columns(parsed_col, columns) -%}
    {%- for col in columns %}
    {{ pf_json_field(parsed_col, col[2] if col | length > 2 else col[0], col[1]) }} as {{ col[0] }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{% macro pf_json_field(parsed_col, path, type) -%}
    {{ return(adapter.dispatch('pf_json_field', 'pharmaflow')(parsed_col, path, type)) }}
{%- endmacro %}

{# Not written for this adapter: an error when a model is compiled to run, not at parse time (so
   `dbt parse` / docs / lineage still work on any adapter). #}
{% macro default__pf_json_parse(payload_col, columns) -%}
    {%- if execute -%}
    {{ exceptions.raise_compiler_error("pharmaflow: pf_json_parse is not implemented for adapter '" ~ target.type ~ "'") }}
    {%- endif -%}
    {{ payload_col }}
{%- endmacro %}

{% macro default__pf_json_field(parsed_col, path, type) -%}
    {%- if execute -%}
    {{ exceptions.raise_compiler_error("pharmaflow: pf_json_field is not implemented for adapter '" ~ target.type ~ "'") }}
    {%- endif -%}
    null
{%- endmacro %}

{# ---- duckdb: one json_transform per row (parses the text once; ~4x faster than one
     json_extract per field), then typed struct field access. ---- #}

{% macro pf_duckdb_json_type(type) -%}
    {%- set types = {
        'string': 'VARCHAR',
        'int': 'INTEGER',
        'bigint': 'BIGINT',
        'decimal': 'DECIMAL(12,2)',
        'double': 'DOUBLE',
        'boolean': 'BOOLEAN',
        'date': 'DATE',
        'timestamp': 'VARCHAR',
        'string_list': ['VARCHAR'],
    } -%}
    {%- if type not in types -%}
        {{ exceptions.raise_compiler_error("pharmaflow: unknown payload column type '" ~ type ~ "'") }}
    {%- endif -%}
    {{ return(types[type]) }}
{%- endmacro %}

{# The payload columns' dotted paths as a nested dict (an object per path prefix), each leaf
   the column's type mapped by `leaf_type` (a macro of the type): the shape a reader that parses
   the payload into a struct once per row needs (DuckDB's json_transform, Spark's from_json). #}
{% macro pf_json_path_tree(columns, leaf_type) -%}
    {%- set spec = {} -%}
    {%- for col in columns -%}
        {%- set path = (col[2] if col | length > 2 else col[0]).split('.') -%}
        {%- set ns = namespace(node=spec) -%}
        {%- for part in path[:-1] -%}
            {%- if part not in ns.node -%}
                {%- do ns.node.update({part: {}}) -%}
            {%- endif -%}
            {%- set ns.node = ns.node[part] -%}
        {%- endfor -%}
        {%- do ns.node.update({path[-1]: leaf_type(col[1])}) -%}
    {%- endfor -%}
    {{ return(spec) }}
{%- endmacro %}

{% macro duckdb__pf_json_parse(payload_col, columns) -%}
    {%- set spec = pf_json_path_tree(columns, pf_duckdb_json_type) -%}
    json_transform({{ payload_col }}, '{{ tojson(spec, sort_keys=false) | replace("'", "''") }}')
{%- endmacro %}

{% macro duckdb__pf_json_field(parsed_col, path, type) -%}
    {%- set expr = parsed_col ~ '."' ~ (path.split('.') | join('"."')) ~ '"' -%}
    {%- if type == 'timestamp' -%}
        {{ pf_cast_timestamp_utc(expr) }}
    {%- else -%}
        {{ expr }}
    {%- endif -%}
{%- endmacro %}

{# ---- postgres: the payload text cast to jsonb once per row (a binary, pre-parsed value), then
     one `#>>` text extraction per field and a cast. A JSON null or a missing path gives null.
     Integers go through numeric so that `2.0` converts as DuckDB's json_transform does. ---- #}

{% macro postgres__pf_json_parse(payload_col, columns) -%}
    cast({{ payload_col }} as jsonb)
{%- endmacro %}

{% macro postgres__pf_json_field(parsed_col, path, type) -%}
    {%- set json_path = "'{" ~ (path.split('.') | join(',')) ~ "}'" -%}
    {%- set text = '(' ~ parsed_col ~ ' #>> ' ~ json_path ~ ')' -%}
    {%- set casts = {
        'string': text,
        'int': 'cast(cast(' ~ text ~ ' as numeric) as integer)',
        'bigint': 'cast(cast(' ~ text ~ ' as numeric) as bigint)',
        'decimal': 'cast(' ~ text ~ ' as decimal(12,2))',
        'double': 'cast(' ~ text ~ ' as double precision)',
        'boolean': 'cast(' ~ text ~ ' as boolean)',
        'date': 'cast(' ~ text ~ ' as date)',
    } -%}
    {%- if type == 'timestamp' -%}
        {{ pf_cast_timestamp_utc(text) }}
    {%- elif type == 'string_list' -%}
        {#- a JSON array -> text[]; anything else (missing, null) -> null, as on DuckDB -#}
        case when jsonb_typeof({{ parsed_col }} #> {{ json_path }}) = 'array'
            then array(
                select list.element
                from jsonb_array_elements_text({{ parsed_col }} #> {{ json_path }})
                    with ordinality as list (element, position)
                order by list.position
            )
        end
    {%- elif type in casts -%}
        {{ casts[type] }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("pharmaflow: unknown payload column type '" ~ type ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{# A timestamp text -> timestamp in UTC without zone: a time with an offset (or Z) is converted
   to UTC, a time without one is taken as UTC already. A fraction beyond microseconds (ingest
   accepts up to 9 digits: Java Instant, Go RFC3339Nano) is truncated, as ingest does: DuckDB's
   cast truncates by itself, PostgreSQL's would round (…59.9999999 to the next second), so the
   PostgreSQL branch drops the extra digits first. #}
{% macro pf_cast_timestamp_utc(expr) -%}
    {{ return(adapter.dispatch('pf_cast_timestamp_utc', 'pharmaflow')(expr)) }}
{%- endmacro %}

{# default: PostgreSQL syntax (`~` regex match; the postgres target uses it) #}
{% macro default__pf_cast_timestamp_utc(expr) -%}
    case
        when {{ expr }} ~ '[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$'
            then cast(regexp_replace({{ expr }}, '(\.[0-9]{6})[0-9]+', '\1') as timestamp with time zone)
                at time zone 'UTC'
        else cast(regexp_replace({{ expr }}, '(\.[0-9]{6})[0-9]+', '\1') as timestamp)
    end
{%- endmacro %}

{% macro duckdb__pf_cast_timestamp_utc(expr) -%}
    case
        when regexp_matches({{ expr }}, '[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$')
            then timezone('UTC', cast({{ expr }} as timestamptz))
        else cast({{ expr }} as timestamp)
    end
{%- endmacro %}
