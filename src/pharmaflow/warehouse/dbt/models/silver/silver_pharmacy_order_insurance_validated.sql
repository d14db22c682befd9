{{ config(
    alias='pharmacy_order_insurance_validated',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.pharmacy_order_insurance_validated: one row per distinct `pharmacy.order.insurance_validated` event.
  The payer answered an order's claim: APPROVED, REJECTED or PRIOR_AUTH_REQUIRED.
  An order can have several (prior auth first, approval later).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string'),
    ('status', 'string'),
    ('copay_amount', 'decimal'),
    ('reject_code', 'string')
] -%}

{{ pf_silver_select('pharmacy.order.insurance_validated', payload_columns) }}
