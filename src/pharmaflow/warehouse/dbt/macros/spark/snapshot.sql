{#
  Snapshots (SCD2 reference history, snapshots/reference_history.yml) on plain Parquet tables.

  dbt-spark snapshots only Delta / Iceberg / Hudi tables: it applies the changes with MERGE.
  Without a table format the same change set is applied by rewriting the table: the staging
  relation dbt builds for every strategy (snapshot_staging_table: the inserts, and the updates
  / deletes that close a current version) gives
      new content = every existing version, with dbt_valid_to set where the staging relation
                    closes it (a current version whose dbt_scd_id it updates or deletes)
                  + the staged inserts,
  exactly what MERGE writes. It is staged in `<snapshot>__pf_next` (Spark refuses to overwrite
  a table the same statement reads), then `insert overwrite` from it, then dropped. Reference
  tables are small (tens of rows), so the rewrite costs nothing.

  The first run creates the table as dbt-spark does; everything else is dbt-spark's snapshot
  materialization with the file-format check lifted for parquet.
#}

{% macro pf_spark_snapshot_apply_select(target, staging, columns) -%}
  {%- set target_columns = adapter.get_columns_in_relation(target) | map(attribute='name') | list -%}
  {%- set current_check -%}
    {%- if config.get('dbt_valid_to_current') -%}
      (existing.{{ columns.dbt_valid_to }} = {{ config.get('dbt_valid_to_current') }} or existing.{{ columns.dbt_valid_to }} is null)
    {%- else -%}
      existing.{{ columns.dbt_valid_to }} is null
    {%- endif -%}
  {%- endset -%}
  select
    {%- for name in target_columns %}
      {%- if name | lower == columns.dbt_valid_to | lower %}
      case when closing.{{ columns.dbt_scd_id }} is not null then closing.{{ columns.dbt_valid_to }}
           else existing.{{ name }} end as {{ name }}{{ ',' if not loop.last }}
      {%- else %}
      existing.{{ name }}{{ ',' if not loop.last }}
      {%- endif %}
    {%- endfor %}
  from {{ target }} as existing
  left join (
      select {{ columns.dbt_scd_id }}, {{ columns.dbt_valid_to }}
      from {{ staging }}
      where dbt_change_type in ('update', 'delete')
  ) as closing
      on closing.{{ columns.dbt_scd_id }} = existing.{{ columns.dbt_scd_id }}
      and {{ current_check }}
  union all
  select
    {%- for name in target_columns %}
      staged.{{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
  from {{ staging }} as staged
  where staged.dbt_change_type = 'insert'
{%- endmacro %}

{% materialization snapshot, adapter='spark' %}
  {%- set target_table = model.get('alias', model.get('name')) -%}
  {%- set strategy_name = config.get('strategy') -%}
  {%- set file_format = config.get('file_format') or 'parquet' -%}
  {%- set grant_config = config.get('grants') -%}

  {% set target_relation_exists, target_relation = get_or_create_relation(
          database=none,
          schema=model.schema,
          identifier=target_table,
          type='table') -%}

  {%- if file_format in ['delta', 'iceberg', 'hudi'] -%}
    {% do exceptions.raise_compiler_error('pharmaflow: this snapshot materialization writes Parquet tables; '
                                          ~ file_format ~ ' snapshots are dbt-spark\'s own') %}
  {%- endif -%}

  {% if not adapter.check_schema_exists(model.database, model.schema) %}
    {% do create_schema(model.schema) %}
  {% endif %}

  {%- if not target_relation.is_table -%}
    {% do exceptions.relation_wrong_type(target_relation, 'table') %}
  {%- endif -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% set strategy_macro = strategy_dispatch(strategy_name) %}
  {% set strategy = strategy_macro(model, "snapshotted_data", "source_data", model['config'], target_relation_exists) %}

  {% if not target_relation_exists %}
      {% set build_sql = build_snapshot_table(strategy, model['compiled_code']) %}
      {% call statement('main') %}
          {{ create_table_as(False, target_relation, build_sql) }}
      {% endcall %}
  {% else %}
      {% set columns = config.get("snapshot_table_column_names") or get_snapshot_table_column_names() %}
      {{ adapter.valid_snapshot_target(target_relation, columns) }}
      {% set staging_table = spark_build_snapshot_staging_table(strategy, sql, target_relation) %}
      {% set missing_columns = adapter.get_missing_columns(staging_table, target_relation)
                                   | rejectattr('name', 'equalto', 'dbt_change_type')
                                   | rejectattr('name', 'equalto', 'DBT_CHANGE_TYPE')
                                   | rejectattr('name', 'equalto', 'dbt_unique_key')
                                   | rejectattr('name', 'equalto', 'DBT_UNIQUE_KEY')
                                   | list %}
      {% do create_columns(target_relation, missing_columns) %}
      {%- set next_relation = target_relation.incorporate(path={"identifier": target_table ~ '__pf_next'}) -%}
      {% call statement('drop_stage') %}
          drop table if exists {{ next_relation }}
      {% endcall %}
      {% call statement('stage') %}
          create table {{ next_relation }} using parquet as
          {{ pf_spark_snapshot_apply_select(target_relation, staging_table, columns) }}
      {% endcall %}
      {% call statement('main') %}
          insert overwrite table {{ target_relation }} select * from {{ next_relation }}
      {% endcall %}
      {% call statement('drop_stage_after') %}
          drop table if exists {{ next_relation }}
      {% endcall %}
  {% endif %}

  {% set should_revoke = should_revoke(target_relation_exists, full_refresh_mode) %}
  {% do apply_grants(target_relation, grant_config, should_revoke) %}
  {% do persist_docs(target_relation, model) %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}

  {% if staging_table is defined %}
      {% do post_snapshot(staging_table) %}
  {% endif %}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
