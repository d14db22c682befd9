{#
  BigQuery versions of the cross-database helpers (macros/sql_helpers.sql, gold_helpers.sql,
  gold_rules.sql). Every timestamp on BigQuery is a TIMESTAMP (an instant, shown in UTC: the
  bronze loader loads event_time / ingest_time as TIMESTAMP and the payload conversion makes
  TIMESTAMPs), so these take and give TIMESTAMPs; dbt.dateadd's DATETIME is cast back where it
  meets one (pf_incremental_since).
#}

{# Exact durations: TIMESTAMP_DIFF in microseconds is an INT64, and NUMERIC division is exact
   to 9 places, so the final rounding is PostgreSQL's (half away from zero on the exact
   value), not a float's. #}
{% macro bigquery__pf_hours_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('cast(timestamp_diff(' ~ end_ts ~ ', ' ~ start_ts ~ ', microsecond) as numeric) / 3600000000', 'decimal(12,2)') }}
{%- endmacro %}

{% macro bigquery__pf_days_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('cast(timestamp_diff(' ~ end_ts ~ ', ' ~ start_ts ~ ', microsecond) as numeric) / 86400000000', 'decimal(12,2)') }}
{%- endmacro %}

{% macro bigquery__pf_epoch_us(ts) -%}
    unix_micros({{ ts }})
{%- endmacro %}

{#
  Continuous percentile as an AGGREGATE, with DuckDB's semantic (quantile_cont): linear
  interpolation between the two nearest non-null values, in float64 (as DuckDB's version and
  PostgreSQL's percentile_cont compute it), rounded to 10 places so the caller's final
  pf_cast_decimal rounds the same value on every engine.

  BigQuery's PERCENTILE_CONT exists only as an analytic (window) function, which would need
  the caller's GROUP BY keys, and APPROX_QUANTILES is approximate and does not interpolate.
  So the exact value is computed from the sorted values of the group: ARRAY_AGG(... ORDER BY)
  at the floor and ceiling of fraction * (n - 1) (SAFE_OFFSET: null for an empty group).
  Cost: the group's values are held as one array (BigQuery limits a row to 100 MB, so about
  ten million values per group: the KPI `ALL` scope of a very large warehouse would reach it
  first; APPROX_QUANTILES is then the way out, at the price of exactness).
#}
{% macro bigquery__pf_percentile(expr, fraction) -%}
    {%- set value = 'cast(' ~ expr ~ ' as float64)' -%}
    {%- set sorted = 'array_agg(' ~ value ~ ' ignore nulls order by ' ~ value ~ ')' -%}
    {%- set position = '(' ~ fraction ~ ' * (count(' ~ expr ~ ') - 1))' -%}
    {%- set low = sorted ~ '[safe_offset(cast(floor(' ~ position ~ ') as int64))]' -%}
    {%- set high = sorted ~ '[safe_offset(cast(ceil(' ~ position ~ ') as int64))]' -%}
    round(cast({{ low }} + ({{ position }} - floor({{ position }})) * ({{ high }} - {{ low }}) as bignumeric), 10)
{%- endmacro %}

{# As DuckDB's version: the exact value first (BIGNUMERIC holds a float64's binary value to 38
   places), rounded to 10 places (which removes a float's binary noise: 1.00499999999999989
   becomes 1.005), then the cast to the fixed scale rounds half away from zero. The decimal
   types are renamed where BigQuery needs it (pf_type_decimal). #}
{% macro bigquery__pf_cast_decimal(expr, dtype) -%}
    {%- set parts = modules.re.match('^\\s*(?:decimal|numeric)\\s*\\(\\s*(\\d+)\\s*,\\s*(\\d+)\\s*\\)\\s*$', dtype, modules.re.I) -%}
    {%- set bq_type = pf_type_decimal(parts.group(1) | int, parts.group(2) | int) if parts else dtype -%}
    cast(round(cast({{ expr }} as bignumeric), 10) as {{ bq_type }})
{%- endmacro %}

{# NUMERIC(P, S) holds S <= 9 decimals and P - S <= 29 integer digits; beyond that the same
   value needs BIGNUMERIC(P, S) (S <= 38, P - S <= 38). #}
{% macro bigquery__pf_type_decimal(precision, scale) -%}
    {%- if scale <= 9 and precision - scale <= 29 -%}
        {{ return('numeric(' ~ precision ~ ',' ~ scale ~ ')') }}
    {%- endif -%}
    {{ return('bignumeric(' ~ precision ~ ',' ~ scale ~ ')') }}
{%- endmacro %}

{% macro bigquery__pf_type_double() -%}
    {{ return('float64') }}
{%- endmacro %}

{# NUMERIC keeps no scale (1.50 is 1.5 as text), so the two decimals are written by FORMAT,
   after the same half-away-from-zero rounding as the other engines' cast. #}
{% macro bigquery__pf_decimal_text(expr) -%}
    format('%.2f', cast({{ expr }} as numeric(14,2)))
{%- endmacro %}

{# The calendar day of an instant in an IANA zone: DATE(timestamp, zone). #}
{% macro bigquery__pf_local_date(ts, tz) -%}
    date({{ ts }}, {{ tz }})
{%- endmacro %}

{#
  The zone names BigQuery knows, as a select of `name`. BigQuery has no zone table (DuckDB's
  and PostgreSQL's pg_timezone_names): the candidates are the IANA names of the tz database
  dbt ships (pytz), each kept only where BigQuery itself converts with it (SAFE.DATE is null
  for a zone it does not know), so a name is kept exactly when pf_local_date can use it.
#}
{% macro bigquery__pf_known_timezones() -%}
    select name
    from unnest([
        {%- for name in modules.pytz.all_timezones -%}
        '{{ name }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
    ]) as name
    where safe.date(timestamp '2000-01-01 00:00:00+00', name) is not null
{%- endmacro %}

{# Columns of the warehouse's datasets: each dataset has its own INFORMATION_SCHEMA (logical
   schema names map to `<dataset prefix>_<name>`). #}
{% macro bigquery__pf_schema_columns(schemas) -%}
    {%- for schema in schemas %}
    select table_schema, table_name, column_name
    from `{{ target.database }}`.{{ pf_schema_name(schema) }}.INFORMATION_SCHEMA.COLUMNS
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}

{# Degrees to radians (BigQuery has no RADIANS): x * pi / 180, pi as acos(-1). #}
{% macro bigquery__pf_radians(expr) -%}
    (({{ expr }}) * acos(-1) / 180)
{%- endmacro %}
