{#
  Incremental models on Spark without a table format (plain Parquet tables).

  The project's strategies (macros/incremental.sql): silver `append`s, the gold facts are
  `delete+insert` on their key. dbt-spark knows append, insert_overwrite and, only on Delta /
  Iceberg / Hudi tables, merge. Plain Parquet files cannot delete rows, and neither of the two
  strategies it offers gives the same rows by itself: `insert_overwrite` without partitions
  replaces the whole table with the run's rows (the keys not touched would be lost), and
  `merge` needs a table format this warehouse does not assume (it must run on any Spark,
  with no extra jars).

  So `delete+insert` is written here with insert_overwrite, and gives exactly dbt's
  delete+insert: the run's rows are written to a table `<model>__pf_new`, the new content (the
  table's rows whose key the run did not recompute, plus the run's rows) is staged in
  `<model>__pf_next` (Spark refuses to overwrite a table a query of the same statement reads,
  and the model's SQL reads its own table for the watermark), then `insert overwrite` from it,
  and both are dropped. A key that holds a null is never "touched" (as in `delete ... where
  key in (...)`), so such a row stays, as on DuckDB and PostgreSQL. The run's rows are a table
  rather than dbt-spark's temporary view because Spark analyses a view's SQL again wherever
  it is read: the facts' SQL (many CTEs over the changed keys) took seconds to analyse, three
  times. The rewrite costs the whole table (small next to the silver reads; partitioned Delta
  tables would make it a merge), and a crash between the statements leaves the previous
  content and stages that the next run drops.

  This overrides dbt-spark's `incremental` materialization (a root-project materialization for
  the adapter wins over the plugin's); everything else is dbt-spark's (same steps, same macros).
#}

{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
  {%- if raw_strategy == 'delete+insert' -%}
    {% do return(raw_strategy) %}
  {%- endif -%}
  {% do return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) %}
{% endmacro %}

{#- the rows of `target` whose key is not among `source`'s, plus `source`'s rows -#}
{% macro pf_spark_delete_insert_select(source, target, unique_key) -%}
  {%- set keys = [unique_key] if unique_key is string else unique_key -%}
  {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
  select {{ columns }} from {{ target }} as pf_kept
  where not exists (
      select 1 from {{ source }} as pf_new
      where {% for key in keys %}pf_new.{{ key }} = pf_kept.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
  )
  union all
  select {{ columns }} from {{ source }}
{%- endmacro %}

{% materialization incremental, adapter='spark', supported_languages=['sql'] -%}
  {%- set raw_file_format = config.get('file_format', default='parquet') -%}
  {%- set raw_strategy = config.get('incremental_strategy') or 'append' -%}
  {%- set grant_config = config.get('grants') -%}

  {%- set file_format = dbt_spark_validate_get_file_format(raw_file_format) -%}
  {%- set strategy = dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}

  {%- set unique_key = config.get('unique_key', none) -%}
  {%- if strategy == 'delete+insert' and not unique_key -%}
    {% do exceptions.raise_compiler_error('delete+insert needs a unique_key: ' ~ model.name) %}
  {%- endif -%}
  {%- set partition_by = config.get('partition_by', none) -%}
  {%- set on_schema_change = incremental_validate_on_schema_change(config.get('on_schema_change'), default='ignore') -%}
  {%- set incremental_predicates = config.get('predicates', none) or config.get('incremental_predicates', none) -%}
  {%- set target_relation = this -%}
  {%- set existing_relation = load_relation(this) -%}
  {%- set tmp_relation = this.incorporate(path={"identifier": this.identifier ~ '__dbt_tmp'}).include(database=false, schema=false) -%}
  {%- set next_relation = this.incorporate(path={"identifier": this.identifier ~ '__pf_next'}, type='table') -%}
  {%- set new_relation = this.incorporate(path={"identifier": this.identifier ~ '__pf_new'}, type='table') -%}

  {%- if strategy in ['insert_overwrite', 'microbatch'] and partition_by -%}
    {%- call statement() -%}
      set spark.sql.sources.partitionOverwriteMode = DYNAMIC
    {%- endcall -%}
  {%- endif -%}

  {{ run_hooks(pre_hooks) }}

  {%- if existing_relation is none -%}
    {%- call statement('main') -%}
      {{ create_table_as(False, target_relation, compiled_code) }}
    {%- endcall -%}
    {% do persist_constraints(target_relation, model) %}
  {%- elif existing_relation.is_view or should_full_refresh() -%}
    {% set is_delta = (file_format == 'delta' and existing_relation.is_delta) %}
    {% if not is_delta %}
      {% do adapter.drop_relation(existing_relation) %}
    {% endif %}
    {%- call statement('main') -%}
      {{ create_table_as(False, target_relation, compiled_code) }}
    {%- endcall -%}
    {% do persist_constraints(target_relation, model) %}
  {%- elif strategy == 'delete+insert' -%}
    {#- the run's rows as a table (the model's SQL analysed and run once), then the stage -#}
    {%- call statement('drop_new') -%}
      drop table if exists {{ new_relation }}
    {%- endcall -%}
    {%- call statement('create_new') -%}
      create table {{ new_relation }} using parquet as
      {{ compiled_code }}
    {%- endcall -%}
    {%- do process_schema_changes(on_schema_change, new_relation, existing_relation) -%}
    {%- call statement('drop_stage') -%}
      drop table if exists {{ next_relation }}
    {%- endcall -%}
    {%- call statement('stage') -%}
      create table {{ next_relation }} using parquet as
      {{ pf_spark_delete_insert_select(new_relation, target_relation, unique_key) }}
    {%- endcall -%}
    {%- call statement('main') -%}
      insert overwrite table {{ target_relation }}
      select * from {{ next_relation }}
    {%- endcall -%}
    {%- call statement('drop_stages') -%}
      drop table if exists {{ next_relation }}
    {%- endcall -%}
    {%- call statement('drop_new_after') -%}
      drop table if exists {{ new_relation }}
    {%- endcall -%}
  {%- else -%}
    {%- call statement('create_tmp_relation') -%}
      {{ create_table_as(True, tmp_relation, compiled_code) }}
    {%- endcall -%}
    {%- do process_schema_changes(on_schema_change, tmp_relation, existing_relation) -%}
    {%- call statement('main') -%}
      {{ dbt_spark_get_incremental_sql(strategy, tmp_relation, target_relation, existing_relation, unique_key, incremental_predicates) }}
    {%- endcall -%}
  {%- endif -%}

  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode) %}
  {% do apply_grants(target_relation, grant_config, should_revoke) %}

  {% do persist_docs(target_relation, model) %}

  {{ run_hooks(post_hooks) }}

  {{ return({'relations': [target_relation]}) }}

{%- endmaterialization %}
