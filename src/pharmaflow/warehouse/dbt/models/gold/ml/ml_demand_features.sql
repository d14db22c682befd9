{#
  gold.ml_demand_features: one row per (pharmacy_id, ndc, origin_date): what a forecaster knows
  at the END of origin_date about a product's sales at a pharmacy, and what it sold 7 and 28
  days later (the labels). The demand forecaster (ml/demand.py) learns from it.

  Business rules:
    * Days are the pharmacy's LOCAL business days (gold.fact_sales_daily_local): a store's
      evening sales after UTC midnight belong to the day they were made on, so the weekday
      pattern and a day's price are not split across two UTC dates.
    * A day without a sales row sold 0 units: each (pharmacy, product) pair is laid on the
      calendar (gold.dim_date) from the first day of sales data on, and missing days count 0.
    * The newest business day in the data is treated as still open (in production it is today;
      a simulated window cuts its evening) and is left out, as an origin and as a label: the
      series ends on the last complete day, newest - 1.
    * A pair has rows from the day of its first sale on (origin_date >= first sale).
    * Point-in-time: every feature of a row reads only days <= origin_date (sales of the
      pair, of the product at every pharmacy, of the pharmacy for every product). Windows that
      would reach before the first day of data are null, not zero-filled. There is no
      promotion calendar in the data (sales events only say a sale was promoted when it was
      made), so no feature says whether the target day will be promoted.
    * Labels: label_units_h7 / label_units_h28 = units on origin_date + 7 / + 28, null while
      that day is not complete yet. Both target days fall on origin_date's weekday.
    * Averages and ratios are exact decimals (half away from zero), so the table is the same on
      every engine; a price is revenue / units (the mean price paid). Shares are decimal(12,4);
      averages and price ratios decimal(24,4), divided in decimal(35,6): a till can send huge
      (in-contract) quantities and prices, and one such sale must not stop the build.
#}
{%- set mean, exact = 'decimal(24,4)', 'decimal(35,6)' %}

with daily_sales as (
    select business_date as sale_date, pharmacy_id, ndc, units, revenue, promo_units
    from {{ ref('fact_sales_daily_local') }}
),

bounds as (
    select min(sale_date) as first_day, max(sale_date) as newest_day
    from daily_sales
),

pairs as (
    select pharmacy_id, ndc, min(sale_date) as first_sale_date
    from daily_sales
    group by pharmacy_id, ndc
),

days as (
    select calendar.date_day, calendar.day_of_week
    from {{ ref('dim_date') }} as calendar
    cross join bounds
    where calendar.date_day >= bounds.first_day
      and calendar.date_day < bounds.newest_day
),

series as (
    select
        pairs.pharmacy_id,
        pairs.ndc,
        pairs.first_sale_date,
        days.date_day,
        days.day_of_week,
        coalesce(daily_sales.units, 0) as units,
        coalesce(daily_sales.revenue, 0) as revenue,
        coalesce(daily_sales.promo_units, 0) as promo_units
    from pairs
    cross join days
    left join daily_sales
        on daily_sales.pharmacy_id = pairs.pharmacy_id
       and daily_sales.ndc = pairs.ndc
       and daily_sales.sale_date = days.date_day
),

windowed as (
    select
        pharmacy_id,
        ndc,
        first_sale_date,
        date_day,
        day_of_week,
        units,
        revenue,
        promo_units,
        lag(units, 7) over pair_days as units_lag7,
        lag(units, 14) over pair_days as units_lag14,
        lag(units, 21) over pair_days as units_lag21,
        count(*) over last_7 as days_7,
        sum(units) over last_7 as units_7,
        sum(revenue) over last_7 as revenue_7,
        sum(promo_units) over last_7 as promo_units_7,
        sum(units) over last_3 as units_3,
        sum(revenue) over last_3 as revenue_3,
        count(*) over prior_7 as days_prior_7,
        sum(units) over prior_7 as units_prior_7,
        count(*) over last_14 as days_14,
        sum(units) over last_14 as units_14,
        count(*) over last_28 as days_28,
        sum(units) over last_28 as units_28,
        sum(revenue) over last_28 as revenue_28,
        sum(case when units = 0 then 1 else 0 end) over last_28 as zero_days_28,
        lead(units, 7) over pair_days as units_ahead_7,
        lead(units, 28) over pair_days as units_ahead_28
    from series
    window
        pair_days as (partition by pharmacy_id, ndc order by date_day),
        last_3 as (partition by pharmacy_id, ndc order by date_day
                   rows between 2 preceding and current row),
        last_7 as (partition by pharmacy_id, ndc order by date_day
                   rows between 6 preceding and current row),
        prior_7 as (partition by pharmacy_id, ndc order by date_day
                    rows between 13 preceding and 7 preceding),
        last_14 as (partition by pharmacy_id, ndc order by date_day
                    rows between 13 preceding and current row),
        last_28 as (partition by pharmacy_id, ndc order by date_day
                    rows between 27 preceding and current row)
),

{#- the product at every pharmacy, and the pharmacy for every product, on each day (over the
    pairs that had started selling by then) #}
product_days as (
    select
        ndc,
        date_day,
        sum(units) as product_units_d0,
        sum(promo_units) as product_promo_units_d0,
        count(*) as product_pharmacies,
        sum(units_7) as product_units_7
    from windowed
    where date_day >= first_sale_date
    group by ndc, date_day
),

pharmacy_days as (
    select
        pharmacy_id,
        date_day,
        count(*) as pharmacy_products,
        sum(units_7) as pharmacy_units_7
    from windowed
    where date_day >= first_sale_date
    group by pharmacy_id, date_day
)

select
    windowed.pharmacy_id,
    windowed.ndc,
    windowed.date_day as origin_date,
    cast({{ dbt.dateadd('day', '7', 'windowed.date_day') }} as date) as target_date_h7,
    cast({{ dbt.dateadd('day', '28', 'windowed.date_day') }} as date) as target_date_h28,
    windowed.day_of_week as target_day_of_week,
    windowed.units as units_d0,
    windowed.units_lag7,
    windowed.units_lag14,
    windowed.units_lag21,
    {{ pf_safe_ratio('windowed.units + windowed.units_lag7 + windowed.units_lag14 + windowed.units_lag21',
                     '4', mean, exact) }} as same_weekday_mean_4w,
    case when windowed.days_7 = 7
         then {{ pf_safe_ratio('windowed.units_7', '7', mean, exact) }} end as units_mean_7d,
    case when windowed.days_14 = 14
         then {{ pf_safe_ratio('windowed.units_14', '14', mean, exact) }} end as units_mean_14d,
    case when windowed.days_28 = 28
         then {{ pf_safe_ratio('windowed.units_28', '28', mean, exact) }} end as units_mean_28d,
    case when windowed.days_prior_7 = 7
         then {{ pf_safe_ratio('windowed.units_7 - windowed.units_prior_7', '7', mean, exact) }}
    end as units_trend_7d,
    case when windowed.days_28 = 28
         then cast(windowed.zero_days_28 as {{ dbt.type_int() }}) end as zero_days_28d,
    case when windowed.days_7 = 7
         then {{ pf_safe_ratio('windowed.promo_units_7', 'windowed.units_7', 'decimal(12,4)', exact) }}
    end as promo_share_7d,
    {{ pf_safe_ratio('windowed.promo_units', 'windowed.units', 'decimal(12,4)', exact) }}
        as promo_share_d0,
    case when windowed.days_28 = 28
         then {{ pf_safe_ratio(pf_safe_ratio('windowed.revenue_3', 'windowed.units_3', exact, exact),
                               pf_safe_ratio('windowed.revenue_28', 'windowed.units_28', exact, exact),
                               mean, exact) }}
    end as price_3d_vs_28d,
    case when windowed.days_28 = 28
         then {{ pf_safe_ratio(pf_safe_ratio('windowed.revenue_7', 'windowed.units_7', exact, exact),
                               pf_safe_ratio('windowed.revenue_28', 'windowed.units_28', exact, exact),
                               mean, exact) }}
    end as price_7d_vs_28d,
    case when windowed.days_7 = 7
         then {{ pf_safe_ratio('product_days.product_units_7', '7 * product_days.product_pharmacies',
                               mean, exact) }} end as product_units_mean_7d,
    {{ pf_safe_ratio('product_days.product_units_d0', 'product_days.product_pharmacies',
                     mean, exact) }} as product_units_mean_d0,
    {{ pf_safe_ratio('product_days.product_promo_units_d0', 'product_days.product_units_d0',
                     'decimal(12,4)', exact) }} as product_promo_share_d0,
    case when windowed.days_7 = 7
         then {{ pf_safe_ratio('pharmacy_days.pharmacy_units_7', '7 * pharmacy_days.pharmacy_products',
                               mean, exact) }} end as pharmacy_units_mean_7d,
    windowed.units_ahead_7 as label_units_h7,
    windowed.units_ahead_28 as label_units_h28
from windowed
inner join product_days
    on product_days.ndc = windowed.ndc
   and product_days.date_day = windowed.date_day
inner join pharmacy_days
    on pharmacy_days.pharmacy_id = windowed.pharmacy_id
   and pharmacy_days.date_day = windowed.date_day
where windowed.date_day >= windowed.first_sale_date
