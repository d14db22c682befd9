{#
  Typed payload columns on Spark (the contract of macros/json_payload.sql).

  pf_json_parse: ONE from_json per row, into a struct whose leaves are all strings (nested
  objects of the dotted paths are structs). Spark's JSON reader gives a string leaf the value
  as written (a number's text, `true`, a list or object as JSON text) and null for a JSON
  null or a missing key, and the parse never fails on a value of the "wrong" type. Each
  column's type is then applied by pf_json_field with a cast: with ANSI mode off (dbt-spark
  always sets it so) a value that does not convert is null, as DuckDB's json_transform gives
  it; the set-aside rules (macros/spark/set_aside.sql) compare text and converted value.

  Conversions, matched to DuckDB's: int / bigint truncate a fraction (2.7 -> 2) and are null
  beyond their range; decimal(12,2) rounds half up; boolean reads `true` / `false` only (Spark
  would also read `yes`, `1`); a date must be written year-month-day (Spark's cast would read
  `2024` as 2024-01-01); string_list parses the list's JSON text.
#}

{% macro pf_spark_struct_type(spec) -%}
    {%- set fields = [] -%}
    {%- for name, child in spec.items() -%}
        {%- do fields.append('`' ~ name ~ '`: ' ~ (pf_spark_struct_type(child) if child is mapping else child)) -%}
    {%- endfor -%}
    {{ return('struct<' ~ fields | join(', ') ~ '>') }}
{%- endmacro %}

{% macro pf_spark_leaf_type(type) -%}
    {{ return('string') }}
{%- endmacro %}

{% macro spark__pf_json_parse(payload_col, columns) -%}
    {%- set spec = pf_json_path_tree(columns, pf_spark_leaf_type) -%}
    from_json({{ payload_col }}, '{{ pf_spark_struct_type(spec) }}')
{%- endmacro %}

{# The payload value at `path` as the JSON reader gave it (text, or null). #}
{% macro pf_spark_json_text(parsed_col, path) -%}
    {{ parsed_col }}.`{{ path.split('.') | join('`.`') }}`
{%- endmacro %}

{% macro spark__pf_json_field(parsed_col, path, type) -%}
    {%- set text = pf_spark_json_text(parsed_col, path) -%}
    {%- if type == 'string' -%}
        {{ text }}
    {%- elif type in ('int', 'bigint') -%}
        cast({{ text }} as {{ type }})
    {%- elif type == 'decimal' -%}
        cast({{ text }} as decimal(12,2))
    {%- elif type == 'double' -%}
        cast({{ text }} as double)
    {%- elif type == 'boolean' -%}
        case {{ text }} when 'true' then true when 'false' then false end
    {%- elif type == 'date' -%}
        case when {{ text }} rlike '^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ].*)?$' then cast({{ text }} as date) end
    {%- elif type == 'timestamp' -%}
        {{ pf_cast_timestamp_utc(text) }}
    {%- elif type == 'string_list' -%}
        from_json({{ text }}, 'array<string>')
    {%- else -%}
        {{ exceptions.raise_compiler_error("pharmaflow: unknown payload column type '" ~ type ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#
  A timestamp text -> timestamp (UTC, no zone; the session zone is UTC: targets.py): Spark's
  cast converts a time with an offset (`Z`, `+02:00`, `+0200`, `+02`) to UTC and takes one
  without as UTC, and truncates a fraction beyond microseconds, as ingest does. It is given
  only the ISO shapes DuckDB's cast reads (Spark's alone would read `2024` or `2024-03`), with
  a lower-case `z` made upper-case (Spark's cast does not know it).
#}
{% macro spark__pf_cast_timestamp_utc(expr) -%}
    case
        when {{ expr }} rlike '^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)? ?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$'
            then cast(regexp_replace({{ expr }}, 'z$', 'Z') as timestamp)
    end
{%- endmacro %}
