{#
  Incremental strategies on BigQuery.

  The project's models ask for `append` (silver: add the rows of unread batches) and
  `delete+insert` (gold facts: replace every row of the keys a run recomputed). dbt-bigquery
  1.11 implements only merge, insert_overwrite and microbatch, and neither of those means the
  same:
    * merge on unique_key needs one source and one target row per key, but
      fact_shipment_temperature_hourly is keyed by shipment with one row per shipment x hour
      (BigQuery refuses such a MERGE), and merge never removes a row the recomputation no
      longer produces;
    * insert_overwrite replaces whole partitions with the model's rows, but an incremental
      fact selects only the changed keys, so the other keys of those partitions would be lost.
  So the two strategies are written here, with the SQL dbt's own adapters run for them:
    * append: `insert into target (cols) select cols from source`;
    * delete+insert: one multi-statement transaction (all or nothing): delete the target rows
      whose key is in the source, insert the source rows.
  `source` is dbt's temporary table of the model's rows (every incremental model here has
  on_schema_change='fail', so dbt-bigquery builds it and checks the columns first), else the
  model's SQL as a subquery. The other strategies stay dbt-bigquery's.

  How: dbt-bigquery's incremental materialization calls two macros by name,
  dbt_bigquery_validate_get_incremental_strategy and bq_generate_incremental_build_sql; a macro
  of the root project takes precedence over an adapter's of the same name, and `dbt.<name>`
  still reaches the adapter's own. tests/integration/warehouse/test_bigquery_compile.py renders
  both for every incremental model and checks the installed materialization still calls them.
#}

{% macro dbt_bigquery_validate_get_incremental_strategy(config) -%}
    {%- set strategy = config.get('incremental_strategy') or 'merge' -%}
    {%- if strategy in ('append', 'delete+insert') -%}
        {{ return(strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_bigquery_validate_get_incremental_strategy(config)) }}
{%- endmacro %}

{% macro bq_generate_incremental_build_sql(
    strategy, tmp_relation, target_relation, sql, unique_key, partition_by, partitions, dest_columns, tmp_relation_exists, copy_partitions, incremental_predicates
) -%}
    {%- if strategy in ('append', 'delete+insert') -%}
        {%- set source = tmp_relation if tmp_relation_exists else '(\n' ~ sql ~ '\n)' -%}
        {{ return(pf_bq_append_sql(target_relation, source, dest_columns) if strategy == 'append'
                  else pf_bq_delete_insert_sql(target_relation, source, unique_key, dest_columns)) }}
    {%- endif -%}
    {{ return(dbt.bq_generate_incremental_build_sql(
        strategy, tmp_relation, target_relation, sql, unique_key, partition_by, partitions,
        dest_columns, tmp_relation_exists, copy_partitions, incremental_predicates)) }}
{%- endmacro %}

{% macro pf_bq_column_list(dest_columns) -%}
    {%- set names = [] -%}
    {%- for column in dest_columns -%}
        {%- do names.append(column.quoted) -%}
    {%- endfor -%}
    {{ return(names | join(', ')) }}
{%- endmacro %}

{% macro pf_bq_append_sql(target_relation, source, dest_columns) -%}
    {%- set columns = pf_bq_column_list(dest_columns) -%}
insert into {{ target_relation }} ({{ columns }})
select {{ columns }} from {{ source }} as DBT_INTERNAL_SOURCE
{%- endmacro %}

{#- a key match is `=`: a null key part matches nothing, as in dbt's delete+insert -#}
{% macro pf_bq_delete_insert_sql(target_relation, source, unique_key, dest_columns) -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- if not keys -%}
        {{ exceptions.raise_compiler_error("pharmaflow: delete+insert needs a unique_key") }}
    {%- endif -%}
    {%- set columns = pf_bq_column_list(dest_columns) -%}
begin transaction;
delete from {{ target_relation }} as DBT_INTERNAL_DEST
where exists (
    select 1 from {{ source }} as DBT_INTERNAL_SOURCE
    where {% for key in keys %}DBT_INTERNAL_SOURCE.{{ adapter.quote(key) }} = DBT_INTERNAL_DEST.{{ adapter.quote(key) }}{{ ' and ' if not loop.last }}{% endfor %}
);
insert into {{ target_relation }} ({{ columns }})
select {{ columns }} from {{ source }} as DBT_INTERNAL_SOURCE;
commit transaction
{%- endmacro %}
