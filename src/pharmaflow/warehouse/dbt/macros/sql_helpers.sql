{#
  Small cross-database helpers. The default implementations are standard SQL (they run on
  DuckDB and PostgreSQL); add `<adapter>__` versions where a warehouse differs (BigQuery).
#}

{# Hours from start_ts to end_ts, as a decimal number (null when either is null). #}
{% macro pf_hours_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('pf_hours_between', 'pharmaflow')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__pf_hours_between(start_ts, end_ts) -%}
    cast(extract(epoch from ({{ end_ts }} - {{ start_ts }})) / 3600.0 as decimal(12,2))
{%- endmacro %}

{% macro duckdb__pf_hours_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('(epoch_us(' ~ end_ts ~ ') - epoch_us(' ~ start_ts ~ ')) / 3600000000.0', 'decimal(12,2)') }}
{%- endmacro %}

{#
  Continuous percentile (linear interpolation between the two nearest values, as
  percentile_cont) as an aggregate; `fraction` is a number literal in [0, 1]. Give the result
  its fixed scale with pf_cast_decimal. DuckDB interpolates a DECIMAL in the input's scale and
  truncates (the median of 1.00 and 2.25 is 1.62 there, 1.625 on PostgreSQL, which
  interpolates in double), and a wide decimal still lands just below a half (45.9049999999 for
  45.905): its version interpolates in double as PostgreSQL does and rounds away the binary
  noise at 10 places, so the final cast rounds the same value as on PostgreSQL. BigQuery has percentile_cont only as a window function: the
  aggregate form there is left to the BigQuery port.
#}
{% macro pf_percentile(expr, fraction) -%}
    {{ return(adapter.dispatch('pf_percentile', 'pharmaflow')(expr, fraction)) }}
{%- endmacro %}

{% macro default__pf_percentile(expr, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expr }})
{%- endmacro %}

{% macro duckdb__pf_percentile(expr, fraction) -%}
    cast(round(quantile_cont(cast({{ expr }} as double), {{ fraction }}), 10) as decimal(38,10))
{%- endmacro %}

{# Median (continuous) as an aggregate. #}
{% macro pf_median(expr) -%}
    {{ pf_percentile(expr, 0.5) }}
{%- endmacro %}

{# a / b as a ratio with the given type, null when b is 0 or null; `wide`: the type the
   numerator is divided in (wider where sums of money can be huge) #}
{% macro pf_safe_ratio(numerator, denominator, dtype='decimal(6,4)', wide='decimal(18,6)') -%}
    {{ pf_cast_decimal('cast(' ~ numerator ~ ' as ' ~ wide ~ ') / nullif(' ~ denominator ~ ', 0)', dtype) }}
{%- endmacro %}

{#
  A computed number (a quotient, an average) cast to a fixed-scale decimal type, rounded half
  away from zero on its exact value, the same on every engine. PostgreSQL divides numerics
  exactly (and turns a double into numeric through its 15 significant digits), so a plain cast
  does it. DuckDB divides decimals in DOUBLE (avg too): 1.005 is 1.00499999999999989 there, and
  a direct cast gives 1.00 where PostgreSQL gives 1.01. Rounding to 10 decimals first removes
  the binary error, then the cast rounds the exact value.
#}
{% macro pf_cast_decimal(expr, dtype='decimal(12,2)') -%}
    {{ return(adapter.dispatch('pf_cast_decimal', 'pharmaflow')(expr, dtype)) }}
{%- endmacro %}

{% macro default__pf_cast_decimal(expr, dtype) -%}
    cast({{ expr }} as {{ dtype }})
{%- endmacro %}

{% macro duckdb__pf_cast_decimal(expr, dtype) -%}
    cast(cast({{ expr }} as decimal(38,10)) as {{ dtype }})
{%- endmacro %}

{# The 8-byte floating-point type (scores, coordinates, correlations): `double precision` in
   standard SQL; Spark names it `double` (macros/spark/sql_helpers.sql). #}
{% macro pf_type_double() -%}
    {{ return(adapter.dispatch('pf_type_double', 'pharmaflow')()) }}
{%- endmacro %}

{% macro default__pf_type_double() -%}
    {{ return('double precision') }}
{%- endmacro %}

{# The exact decimal type decimal(precision, scale) (a wide sum, an exact ratio): the standard
   name; BigQuery caps NUMERIC at 29 integer digits and 9 decimals, beyond which its name is
   BIGNUMERIC (macros/bigquery/sql_helpers.sql). #}
{% macro pf_type_decimal(precision, scale) -%}
    {{ return(adapter.dispatch('pf_type_decimal', 'pharmaflow')(precision, scale)) }}
{%- endmacro %}

{% macro default__pf_type_decimal(precision, scale) -%}
    {{ return('decimal(' ~ precision ~ ',' ~ scale ~ ')') }}
{%- endmacro %}

{# Degrees to radians: radians() on DuckDB, PostgreSQL and Spark; BigQuery has no such
   function (macros/bigquery/sql_helpers.sql). #}
{% macro pf_radians(expr) -%}
    {{ return(adapter.dispatch('pf_radians', 'pharmaflow')(expr)) }}
{%- endmacro %}

{% macro default__pf_radians(expr) -%}
    radians({{ expr }})
{%- endmacro %}

{# Every column of the tables and views in `schemas`, as a select of (table_schema,
   table_name, column_name): information_schema.columns; Spark has none
   (macros/spark/sql_helpers.sql). #}
{% macro pf_schema_columns(schemas) -%}
    {{ return(adapter.dispatch('pf_schema_columns', 'pharmaflow')(schemas)) }}
{%- endmacro %}

{% macro default__pf_schema_columns(schemas) -%}
    select table_schema, table_name, column_name
    from information_schema.columns
    where lower(table_schema) in ('{{ schemas | join("', '") }}')
{%- endmacro %}

{# count of rows where the condition holds (portable count-if; 0 when none, bigint) #}
{% macro pf_count_if(condition) -%}
    count(case when {{ condition }} then 1 end)
{%- endmacro %}

{# deterministic surrogate key from a list of column expressions #}
{% macro pf_surrogate_key(columns) -%}
    {%- set parts = [] -%}
    {%- for c in columns -%}
        {%- do parts.append("coalesce(cast(" ~ c ~ " as " ~ dbt.type_string() ~ "), '~null~')") -%}
        {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}

{#
  One row per `partition_by`: the first row in `order_by` order (use `... desc` for the latest).
  Portable replacement for DuckDB/BigQuery `qualify row_number() ... = 1`.
#}
{% macro pf_pick_one(relation, partition_by, order_by) -%}
    select *
    from (
        select
            {{ relation }}.*,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as pick_rank
        from {{ relation }}
    ) picked
    where pick_rank = 1
{%- endmacro %}
