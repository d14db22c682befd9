{#
  BigQuery physical design, set per model and applied only when the target is BigQuery (other
  adapters give `partition_by` their own meaning — dbt-duckdb uses it for partitioned writes —
  so it must not leak to them).

  Why: BigQuery bills and scans by bytes read. Partitioning a fact by the day of its event time
  lets the usual "last N days" query read N partitions instead of the table, and lets an
  incremental delete+insert touch only the partitions it rewrites. Clustering by the keys people
  filter and join on (pharmacy, product, site, carrier, status) sorts each partition's blocks so
  a filter on them skips most blocks.

      {{ config(partition_by=pf_bq_partition('placed_at'), cluster_by=pf_bq_cluster(['pharmacy_id'])) }}
#}
{% macro pf_bq_partition(field, data_type='timestamp', granularity='day') -%}
    {%- if target.type == 'bigquery' -%}
        {{ return({'field': field, 'data_type': data_type, 'granularity': granularity}) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% macro pf_bq_cluster(columns) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return(columns) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
