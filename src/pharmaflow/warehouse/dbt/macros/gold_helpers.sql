{#
  Helpers of the domain gold facts and KPI models (fact_shipment, fact_deviation, fact_survey,
  fact_sales_daily, dim_date, kpi_*). Same rule as macros/sql_helpers.sql: the default
  implementation is standard SQL (it runs on PostgreSQL), DuckDB / BigQuery get their own
  `<adapter>__` version where they differ. Every number a KPI shows is computed so that it does
  not depend on the summation order or on the engine: integer counts and sums of decimals are
  exact, ratios go through pf_safe_ratio / pf_cast_decimal (macros/sql_helpers.sql), and only
  the final value is cast to a fixed scale.
#}

{# Microseconds since the Unix epoch of a timestamp (UTC, no zone), as a bigint: exact on every
   engine, so sums of durations do not depend on floating point. #}
{% macro pf_epoch_us(ts) -%}
    {{ return(adapter.dispatch('pf_epoch_us', 'pharmaflow')(ts)) }}
{%- endmacro %}

{# PostgreSQL: extract(epoch ...) is an exact numeric (PostgreSQL 14+) #}
{% macro default__pf_epoch_us(ts) -%}
    cast(extract(epoch from {{ ts }}) * 1000000 as bigint)
{%- endmacro %}

{% macro duckdb__pf_epoch_us(ts) -%}
    epoch_us({{ ts }})
{%- endmacro %}

{# A number of microseconds (integer expression) as minutes, decimal(12,2). #}
{% macro pf_us_to_minutes(us_expr) -%}
    {{ pf_cast_decimal('cast(' ~ us_expr ~ ' as decimal(20,0)) / 60000000', 'decimal(12,2)') }}
{%- endmacro %}

{# Days from start_ts to end_ts as a decimal number, decimal(12,2) (null when either is null);
   the day version of pf_hours_between (macros/sql_helpers.sql). #}
{% macro pf_days_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('pf_days_between', 'pharmaflow')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__pf_days_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('extract(epoch from (' ~ end_ts ~ ' - ' ~ start_ts ~ ')) / 86400.0', 'decimal(12,2)') }}
{%- endmacro %}

{% macro duckdb__pf_days_between(start_ts, end_ts) -%}
    {{ pf_cast_decimal('(epoch_us(' ~ end_ts ~ ') - epoch_us(' ~ start_ts ~ ')) / 86400000000.0', 'decimal(12,2)') }}
{%- endmacro %}

{# Mean of an exact (integer or decimal) expression as sum / count, as `dtype` (null without a
   non-null value): avg() would sum floating point in DuckDB, whose result can depend on the
   summation order. Cast floating-point measurements to a decimal first (pf_measurement). #}
{% macro pf_exact_avg(expr, dtype='decimal(12,2)') -%}
    {{ pf_safe_ratio('sum(' ~ expr ~ ')', 'count(' ~ expr ~ ')', dtype) }}
{%- endmacro %}

{# A float measurement as an exact decimal (readings carry 2 decimals). #}
{% macro pf_measurement(expr) -%}
    cast({{ expr }} as decimal(9,2))
{%- endmacro %}

{# NPS bucket of a 0-10 score: PROMOTER 9-10, PASSIVE 7-8, DETRACTOR 0-6 (null stays null). #}
{% macro pf_nps_category(score) -%}
    case
        when {{ score }} >= 9 then 'PROMOTER'
        when {{ score }} >= 7 then 'PASSIVE'
        when {{ score }} >= 0 then 'DETRACTOR'
    end
{%- endmacro %}

{#
  A calendar part of a date as an integer: year, quarter, month, day, doy (day of year),
  isodow (ISO day of week, 1 = Monday .. 7 = Sunday), week (ISO week), isoyear (ISO week-year).
  Standard `extract` on DuckDB and PostgreSQL; BigQuery names the ISO parts differently.
#}
{% macro pf_date_part(part, date_expr) -%}
    {{ return(adapter.dispatch('pf_date_part', 'pharmaflow')(part, date_expr)) }}
{%- endmacro %}

{% macro default__pf_date_part(part, date_expr) -%}
    cast(extract({{ part }} from {{ date_expr }}) as {{ dbt.type_int() }})
{%- endmacro %}

{% macro bigquery__pf_date_part(part, date_expr) -%}
    {%- set parts = {'doy': 'dayofyear', 'week': 'isoweek', 'isoyear': 'isoyear'} -%}
    {%- if part == 'isodow' -%}
    mod(extract(dayofweek from {{ date_expr }}) + 5, 7) + 1
    {%- else -%}
    extract({{ parts.get(part, part) }} from {{ date_expr }})
    {%- endif -%}
{%- endmacro %}

{#
  KPI scopes. Each row of `relation` comes out twice: once in the overall scope (scope = 'ALL',
  scope_id = 'ALL') and once in its own `scope` (scope_id = `id_expr`; rows where that is null
  count only in ALL). Grouping by (scope, scope_id) then gives the overall row and one row per
  entity from the same metric SQL, percentiles included (they do not add up from the parts).
#}
{# Every (scope, scope_id) of a KPI table, with the ALL row even when there is no data, so a
   KPI table always answers for the whole. #}
{% macro pf_kpi_scope_rows(kpis) -%}
    select
        cast('ALL' as {{ dbt.type_string() }}) as scope,
        cast('ALL' as {{ dbt.type_string() }}) as scope_id
    union distinct
    select scope, scope_id from {{ kpis }}
{%- endmacro %}

{% macro pf_kpi_scopes(relation, scope, id_expr) -%}
    select
        cast('ALL' as {{ dbt.type_string() }}) as scope,
        cast('ALL' as {{ dbt.type_string() }}) as scope_id,
        {{ relation }}.*
    from {{ relation }}
    union all
    select
        cast('{{ scope }}' as {{ dbt.type_string() }}) as scope,
        cast({{ id_expr }} as {{ dbt.type_string() }}) as scope_id,
        {{ relation }}.*
    from {{ relation }}
    where {{ id_expr }} is not null
{%- endmacro %}

{#
  The one event order of gold: by EVENT time (never arrival order), ties broken by ingest time,
  then event_id, so every rerun picks the same event. 'first' is ascending (the first
  placement), 'latest' descending (the latest status). `prefix` qualifies the columns
  ('sale.'); `tie` is a column order placed right after event_time, for an order that ranks
  events of equal time by something of their own first (the later lifecycle stage wins):

      {{ pf_pick_one('placed_events', 'order_id', pf_event_order('first')) }}
      lead(...) over (partition by logger_id order by {{ pf_event_order('first') }})
      {{ pf_event_order('latest', tie='stage_rank desc') }}
#}
{% macro pf_event_order(which, prefix='', tie=none) -%}
    {%- if which not in ('first', 'latest') -%}
        {{ exceptions.raise_compiler_error("pf_event_order: 'first' or 'latest', not " ~ which) }}
    {%- endif -%}
    {%- set direction = '' if which == 'first' else ' desc' -%}
    {%- set parts = [prefix ~ 'event_time' ~ direction] -%}
    {%- if tie -%}{%- do parts.append(tie) -%}{%- endif -%}
    {%- do parts.append(prefix ~ 'ingest_time' ~ direction) -%}
    {%- do parts.append(prefix ~ 'event_id' ~ direction) -%}
    {{ return(parts | join(', ')) }}
{%- endmacro %}

{#
  The calendar day of a UTC timestamp (no zone, as every gold time) in an IANA time zone
  (an expression, e.g. 'America/New_York' or a column): the local business day. The same
  `at time zone` SQL runs on PostgreSQL and on DuckDB (whose ICU extension, built into the
  Python wheel, holds the zone database). Daylight saving is applied as of that instant.
#}
{% macro pf_local_date(ts, tz) -%}
    {{ return(adapter.dispatch('pf_local_date', 'pharmaflow')(ts, tz)) }}
{%- endmacro %}

{% macro default__pf_local_date(ts, tz) -%}
    cast(({{ ts }} at time zone 'UTC') at time zone {{ tz }} as date)
{%- endmacro %}

{#
  The names of the time zones the warehouse engine knows (a select of one column, `name`):
  dim_facility keeps a reference timezone only when the engine can convert with it.
#}
{% macro pf_known_timezones() -%}
    {{ return(adapter.dispatch('pf_known_timezones', 'pharmaflow')()) }}
{%- endmacro %}

{% macro default__pf_known_timezones() -%}
    select name from pg_timezone_names
{%- endmacro %}

{% macro duckdb__pf_known_timezones() -%}
    select name from pg_timezone_names()
{%- endmacro %}

{# 100 * part / whole of two microsecond sums (integers of any size), decimal(6,2); null
   when whole is 0 or null. Wide decimals: a year of one-minute logger intervals overflows
   pf_safe_ratio's decimal(18,6). #}
{% macro pf_us_ratio_pct(part_us, whole_us) -%}
    {%- set wide = pf_type_decimal(38, 0) -%}
    {{ pf_cast_decimal('100 * cast(' ~ part_us ~ ' as ' ~ wide ~ ') / nullif(cast(' ~ whole_us
                       ~ ' as ' ~ wide ~ '), 0)', 'decimal(6,2)') }}
{%- endmacro %}

{#
  The measures of a day of point-of-sale sales (fact_sales_daily by UTC day and
  fact_sales_daily_local by business day aggregate the same way, so their totals agree): sales
  (distinct events), units, revenue = sum of quantity x unit_price as decimal(38,2) (exact, and
  wide enough for any valid sale: a 32-bit quantity times a decimal(12,2) price, summed),
  promo_sales / promo_units (those with a promotion_code), last_ingest_time (the watermark).
#}
{% macro pf_sales_measures() -%}
        count(*) as sales,
        cast(sum(quantity) as {{ dbt.type_bigint() }}) as units,
        cast(sum(cast(quantity as decimal(20,0)) * unit_price) as {{ pf_type_decimal(38, 2) }}) as revenue,
        {{ pf_count_if('promotion_code is not null') }} as promo_sales,
        cast(coalesce(sum(case when promotion_code is not null then quantity end), 0)
             as {{ dbt.type_bigint() }}) as promo_units,
        max(ingest_time) as last_ingest_time
{%- endmacro %}
