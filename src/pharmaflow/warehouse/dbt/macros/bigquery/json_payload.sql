{#
  BigQuery: typed extraction of the JSON `payload` text column (macros/json_payload.sql has the
  contract: column types, null when a value does not convert).

  The payload is parsed once per row into BigQuery's JSON type (`safe.parse_json`: a payload
  that is not JSON gives null, never an error), then each field is one JSON_VALUE /
  JSON_QUERY on the parsed value plus a SAFE_CAST: a value that does not read as the column's
  type becomes null, as DuckDB's json_transform makes it, instead of failing the whole query.
  `wide_number_mode => 'round'`: the default ('exact') raises on a number a float64 cannot
  hold exactly; rounding is what DuckDB does, and such a number then fails its type check
  (e.g. an int beyond INTEGER reads as null and is set aside, macros/bigquery/set_aside.sql).

  Types as on DuckDB: `int` is 32-bit there, so a value outside [-2^31, 2^31 - 1] reads as
  null here too (BigQuery's INT64 would hold it); integers go through BIGNUMERIC so `2.0` reads
  as 2 (json_transform's rule), rounded half away from zero like DuckDB's cast;
  `decimal` is decimal(12,2): rounded to 2 places, null from 10^10 on; `timestamp` is a
  TIMESTAMP (an instant; shown in UTC) from the text (macros/bigquery/json_payload.sql,
  pf_cast_timestamp_utc); `string_list` is ARRAY<STRING> of the elements' values, null when
  the value is not an array (a JSON null element stays a null element here, so the
  null_list_element rule sees it: BigQuery cannot store such an array, and silver keeps only
  rows that pass the rules).
#}

{% macro bigquery__pf_json_parse(payload_col, columns) -%}
    safe.parse_json({{ payload_col }}, wide_number_mode => 'round')
{%- endmacro %}

{# The JSONPath of a dotted payload path: `patient.zip3` -> '$.patient.zip3' (the names are the
   models' own column paths: letters, digits and underscores). #}
{% macro pf_bq_json_path(path) -%}
    {{ return("'$." ~ path ~ "'") }}
{%- endmacro %}

{% macro bigquery__pf_json_field(parsed_col, path, type) -%}
    {%- set json_path = pf_bq_json_path(path) -%}
    {%- set text = 'json_value(' ~ parsed_col ~ ', ' ~ json_path ~ ')' -%}
    {%- set whole = 'round(safe_cast(' ~ text ~ ' as bignumeric))' -%}
    {%- if type == 'string' -%}
        {{ text }}
    {%- elif type == 'int' -%}
        case when {{ whole }} between -2147483648 and 2147483647 then cast({{ whole }} as int64) end
    {%- elif type == 'bigint' -%}
        safe_cast({{ whole }} as int64)
    {%- elif type == 'decimal' -%}
        {%- set cents = 'round(safe_cast(' ~ text ~ ' as bignumeric), 2)' -%}
        case when abs({{ cents }}) < 10000000000 then cast({{ cents }} as numeric) end
    {%- elif type == 'double' -%}
        safe_cast({{ text }} as float64)
    {%- elif type == 'boolean' -%}
        safe_cast({{ text }} as bool)
    {%- elif type == 'date' -%}
        safe_cast({{ text }} as date)
    {%- elif type == 'timestamp' -%}
        {{ pf_cast_timestamp_utc(text) }}
    {%- elif type == 'string_list' -%}
        {#- element by element, in order: a JSON null element stays null (json_value_array's
            handling of nulls is not documented to be that) -#}
        case when json_type(json_query({{ parsed_col }}, {{ json_path }})) = 'array' then array(
            select json_value(list_element)
            from unnest(json_query_array({{ parsed_col }}, {{ json_path }})) as list_element
                with offset as list_position
            order by list_position
        ) end
    {%- else -%}
        {{ exceptions.raise_compiler_error("pharmaflow: unknown payload column type '" ~ type ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#
  A timestamp text -> TIMESTAMP, null when it does not read (a SAFE_CAST: never an error). As on
  DuckDB and PostgreSQL: a time with an offset or `Z` is that instant, a time without one is
  taken as UTC (BigQuery's default zone for a cast), a fraction beyond microseconds is
  truncated. BigQuery's cast wants the offset as `+HH[:MM]` directly after the time, so the
  forms ingest accepts (`Z`/`z`, `+0530`, a space before the offset) are rewritten to that
  first.
#}
{% macro bigquery__pf_cast_timestamp_utc(expr) -%}
    {%- set time = '([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\\.[0-9]+)?)?) ?' -%}
    safe_cast(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace({{ expr }},
            r'(\.[0-9]{6})[0-9]+', r'\1'),
            r'{{ time }}[zZ]$', r'\1+00:00'),
            r'{{ time }}([+-][0-9]{2}):?([0-9]{2})$', r'\1\2:\3'),
            r'{{ time }}([+-][0-9]{2})$', r'\1\2:00')
        as timestamp)
{%- endmacro %}
