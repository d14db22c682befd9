{#
  Spark versions of the small cross-database helpers (macros/sql_helpers.sql,
  macros/gold_helpers.sql, macros/genealogy_helpers.sql).

  Numbers: Spark divides decimals exactly and rounds half up at the result's scale (at least
  6 decimals, 11 to 26 in the quotients below), so the default pf_cast_decimal (a plain cast)
  gives PostgreSQL's values; durations are integer microseconds (unix_micros) divided in
  decimal, never in double.
#}

{% macro spark__pf_epoch_us(ts) -%}
    unix_micros({{ ts }})
{%- endmacro %}

{% macro spark__pf_hours_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('(unix_micros(' ~ end_ts ~ ') - unix_micros(' ~ start_ts ~ ')) / 3600000000.0', 'decimal(12,2)') }}
{%- endmacro %}

{% macro spark__pf_days_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('(unix_micros(' ~ end_ts ~ ') - unix_micros(' ~ start_ts ~ ')) / 86400000000.0', 'decimal(12,2)') }}
{%- endmacro %}

{#
  Continuous percentile: Spark's `percentile` is exact (every value is kept, then linear
  interpolation between the two nearest, as percentile_cont), in double, like DuckDB's
  version: rounded at 10 places so the final cast rounds the same value on every engine.
  percentile_approx would be cheaper on big data but is not the same number.
#}
{% macro spark__pf_percentile(expr, fraction) -%}
    cast(round(percentile(cast({{ expr }} as double), {{ fraction }}), 10) as decimal(38,10))
{%- endmacro %}

{#- extract's ISO fields have their own names on Spark -#}
{% macro spark__pf_date_part(part, date_expr) -%}
    {%- set parts = {'doy': 'doy', 'isodow': 'dayofweek_iso', 'week': 'week', 'isoyear': 'yearofweek'} -%}
    cast(extract({{ parts.get(part, part) }} from {{ date_expr }}) as int)
{%- endmacro %}

{#- the session zone is UTC (targets.py), so from_utc_timestamp gives the local wall clock -#}
{% macro spark__pf_local_date(ts, tz) -%}
    cast(from_utc_timestamp({{ ts }}, {{ tz }}) as date)
{%- endmacro %}

{#
  The zone ids Spark's JVM knows (java.time.ZoneId.getAvailableZoneIds, read through
  reflect(): Spark has no zone table). from_utc_timestamp fails the whole query on an unknown
  zone, so dim_facility must keep only these.
#}
{% macro spark__pf_known_timezones() -%}
    select explode(split(substr(zone_ids, 2, length(zone_ids) - 2), ', ')) as name
    from (select reflect('java.time.ZoneId', 'getAvailableZoneIds') as zone_ids) as jvm
{%- endmacro %}

{#- LATERAL VIEW explode: one row per element; a null or empty list gives no row -#}
{% macro spark__pf_cross_join_unnest(list_expr, element_column) -%}
    lateral view explode({{ list_expr }}) {{ element_column }}_elements as {{ element_column }}
{%- endmacro %}

{% macro spark__pf_type_double() -%}
    {{ return('double') }}
{%- endmacro %}

{#
  Every column of the tables and views in `schemas`, listed at execute time from the catalog
  (Spark has no information_schema) and given to the query as literal rows.
#}
{% macro spark__pf_schema_columns(schemas) -%}
    {%- set rows = [] -%}
    {%- if execute -%}
        {%- for schema in schemas -%}
            {%- for table in pf_schema_table_names(schema) -%}
                {%- set relation = api.Relation.create(schema=schema, identifier=table) -%}
                {%- for column in adapter.get_columns_in_relation(relation) -%}
                    {%- do rows.append("('" ~ schema ~ "', '" ~ table ~ "', '" ~ column.name ~ "')") -%}
                {%- endfor -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if rows -%}
    select table_schema, table_name, column_name
    from values {{ rows | join(', ') }} as catalog_columns (table_schema, table_name, column_name)
    {%- else -%}
    select cast(null as string) as table_schema, cast(null as string) as table_name,
        cast(null as string) as column_name
    where 1 = 0
    {%- endif -%}
{%- endmacro %}

{#
  dbt.dateadd on Spark. dbt-spark's own version goes through Unix seconds (to_unix_timestamp:
  it drops the microseconds) and repeats its argument three times to assert it is not null;
  the incremental watermark (macros/incremental.sql: a scalar subquery on the model's own
  table, in every changed-keys select) then became 18 subqueries per fact, and planning them
  alone took seconds. timestampadd adds the interval to the timestamp itself, exactly; a date
  becomes a timestamp (midnight), as with dbt-spark's.
#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    {%- if datepart | lower not in ('year', 'quarter', 'month', 'week', 'day', 'hour', 'minute', 'second', 'millisecond', 'microsecond') -%}
        {{ exceptions.raise_compiler_error("pharmaflow: dateadd has no Spark version for datepart '" ~ datepart ~ "'") }}
    {%- endif -%}
    timestampadd({{ datepart | upper }}, cast({{ interval }} as bigint), {{ from_date_or_timestamp }})
{%- endmacro %}
