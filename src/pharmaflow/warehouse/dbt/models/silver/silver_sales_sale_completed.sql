{{ config(
    alias='sales_sale_completed',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.sales_sale_completed: one row per distinct `sales.sale.completed` event.
  A point-of-sale sale at a pharmacy.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('sale_id', 'string'),
    ('pharmacy_id', 'string'),
    ('ndc', 'string'),
    ('quantity', 'int'),
    ('unit_price', 'decimal'),
    ('promotion_code', 'string')
] -%}

{{ pf_silver_select('sales.sale.completed', payload_columns) }}
