{#
  gold.dim_date: the calendar, one row per day (date_day) from pf_calendar_start() to
  pf_calendar_end() inclusive (macros/calendar.sql: vars calendar_start, default 2000-01-01, and
  calendar_end, default empty = the build day + 366 days), for joining facts on their UTC event
  date (fact_sales_daily.sale_date, cast(placed_at as date), ...) or a pharmacy's local
  business_date.

  Generated portably (no generate_series): a cross join of five 0-9 digit rows gives the day
  offsets 0 .. 99,999, filtered to the range (at most 99,999 days, about 273 years). ISO rules:
  day_of_week 1 = Monday .. 7 = Sunday, iso_week / iso_year as in ISO 8601 (the first week of
  a year is the one with its first Thursday), weeks start on Monday; is_weekend = Saturday or
  Sunday. Names are English.
#}

{%- set calendar_start = pf_calendar_start() -%}
{%- set calendar_end = pf_calendar_end() -%}
{%- set span_days = (modules.datetime.datetime.strptime(calendar_end, '%Y-%m-%d')
                     - modules.datetime.datetime.strptime(calendar_start, '%Y-%m-%d')).days -%}
{%- if span_days < 0 or span_days > 99999 -%}
    {{ exceptions.raise_compiler_error(
        "pharmaflow: dim_date needs calendar_start <= calendar_end and at most 99,999 days between them"
        ~ " (got " ~ calendar_start ~ " .. " ~ calendar_end ~ ")") }}
{%- endif -%}
{%- set month_names = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
                       'September', 'October', 'November', 'December'] -%}
{%- set day_names = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'] -%}

with digits as (
    select 0 as digit union all select 1 union all select 2 union all select 3
    union all select 4 union all select 5 union all select 6 union all select 7
    union all select 8 union all select 9
),

offsets as (
    select
        ones.digit
        + 10 * tens.digit
        + 100 * hundreds.digit
        + 1000 * thousands.digit
        + 10000 * ten_thousands.digit as day_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands
    cross join digits as ten_thousands
),

days as (
    select
        cast({{ dbt.dateadd('day', 'day_offset', "cast('" ~ calendar_start ~ "' as date)") }} as date)
            as date_day
    from offsets
    where day_offset <= {{ span_days }}
),

parts as (
    select
        date_day,
        {{ pf_date_part('year', 'date_day') }} as year,
        {{ pf_date_part('quarter', 'date_day') }} as quarter,
        {{ pf_date_part('month', 'date_day') }} as month,
        {{ pf_date_part('day', 'date_day') }} as day_of_month,
        {{ pf_date_part('doy', 'date_day') }} as day_of_year,
        {{ pf_date_part('isodow', 'date_day') }} as day_of_week,
        {{ pf_date_part('week', 'date_day') }} as iso_week,
        {{ pf_date_part('isoyear', 'date_day') }} as iso_year,
        {{ pf_date_part('day', dbt.dateadd('day', '1', 'date_day')) }} as next_day_of_month
    from days
)

select
    date_day,
    year * 10000 + month * 100 + day_of_month as date_key,
    year,
    quarter,
    month,
    case month
        {%- for name in month_names %}
        when {{ loop.index }} then '{{ name }}'
        {%- endfor %}
    end as month_name,
    day_of_month,
    day_of_year,
    day_of_week,
    case day_of_week
        {%- for name in day_names %}
        when {{ loop.index }} then '{{ name }}'
        {%- endfor %}
    end as day_name,
    iso_year,
    iso_week,
    cast({{ dbt.dateadd('day', '1 - day_of_week', 'date_day') }} as date) as week_start_date,
    cast({{ dbt.dateadd('day', '1 - day_of_month', 'date_day') }} as date) as month_start_date,
    day_of_week >= 6 as is_weekend,
    next_day_of_month = 1 as is_month_end
from parts
