{#
  The metrics of the daily order summaries, over rows of fact_order_lifecycle (a cohort of
  orders: the stage counts say how many of the orders PLACED that day have reached each stage
  so far, not how many stage events happened that day).
#}
{% macro pf_order_summary_metrics() -%}
    count(*) as orders_placed,
    {{ pf_count_if("insurance_status = 'APPROVED'") }} as orders_approved,
    {{ pf_count_if("insurance_status = 'REJECTED'") }} as orders_rejected,
    {{ pf_count_if("prior_auth_required") }} as orders_prior_auth,
    {{ pf_count_if("filled_at is not null") }} as orders_filled,
    {{ pf_count_if("shipped_at is not null") }} as orders_shipped,
    {{ pf_count_if("delivered_at is not null") }} as orders_delivered,
    {{ pf_count_if("cancelled_at is not null") }} as orders_cancelled,
    {{ pf_cast_decimal('avg(hours_to_deliver)', 'decimal(12,2)') }} as avg_hours_to_deliver,
    {{ pf_cast_decimal(pf_median('hours_to_deliver'), 'decimal(12,2)') }} as p50_hours_to_deliver
{%- endmacro %}
