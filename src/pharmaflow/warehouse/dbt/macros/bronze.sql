{#
  Bronze access.

  Bronze is the raw arrival log written by ingest (docs/lake-layout.md):
    <lake_dir>/bronze/event_type=<type>/date=<YYYY-MM-DD>/hour=<HH>/part-<batch_id>.parquet
  with the envelope columns, `event_json` (the whole event as JSON text), and provenance;
  the views below add `payload`, the payload object of `event_json`, for the models.

  `bronze(event_type)` returns something a model can select from (always alias it:
  `from {{ bronze('pharmacy.order.placed') }} as bronze_events`):
    * duckdb: the `bronze.<type>` view the on-run-start hook made for this run, else a subquery
      over read_parquet(<committed files>, union_by_name=true). When no committed file matches
      yet (small runs, a type never seen), an empty select with the same typed columns, so the
      model still builds with zero rows.
    * other adapters: the `bronze` source table (where bronze is loaded / an external table).
  It also registers the `bronze` source as the model's parent, for lineage and docs.
#}

{% macro pf_lake_dir() -%}
    {%- set lake_dir = var('lake_dir', '') -%}
    {%- if not lake_dir -%}
        {%- set data_dir = env_var('PHARMAFLOW_DATA_DIR', '') -%}
        {%- if data_dir -%}
            {%- set lake_dir = data_dir.rstrip('/') ~ '/lake' -%}
        {%- endif -%}
    {%- endif -%}
    {%- if not lake_dir and execute -%}
        {{ exceptions.raise_compiler_error(
            "pharmaflow: var 'lake_dir' is not set (pass --vars '{lake_dir: /abs/path/to/lake}')") }}
    {%- endif -%}
    {{ return((lake_dir or '/lake_dir/not/set').rstrip('/')) }}
{%- endmacro %}

{% macro pf_bronze_glob(event_type) -%}
    {{ return(pf_lake_dir() ~ '/bronze/event_type=' ~ event_type ~ '/**/*.parquet') }}
{%- endmacro %}

{# The bronze columns and their types (docs/lake-layout.md), in the dbt cross-database type names. #}
{% macro pf_bronze_columns() -%}
    {{ return([
        ('event_id', dbt.type_string()),
        ('event_type', dbt.type_string()),
        ('event_version', dbt.type_int()),
        ('event_time', dbt.type_timestamp()),
        ('source_system', dbt.type_string()),
        ('trace_id', dbt.type_string()),
        ('key', dbt.type_string()),
        ('event_json', dbt.type_string()),
        ('payload', dbt.type_string()),
        ('ingest_time', dbt.type_timestamp()),
        ('source', dbt.type_string()),
        ('source_uri', dbt.type_string()),
        ('source_partition', dbt.type_int()),
        ('source_offset', dbt.type_bigint()),
        ('batch_id', dbt.type_string()),
    ]) }}
{%- endmacro %}

{# A zero-row select with the bronze columns, typed. #}
{% macro pf_empty_bronze_select() -%}
    select
    {%- for name, dtype in pf_bronze_columns() %}
        cast(null as {{ dtype }}) as {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
    where 1 = 0
{%- endmacro %}

{% macro bronze(event_type) -%}
    {#- lineage: the model depends on the bronze source of its event type -#}
    {%- set src = source('bronze', pf_event_table_name(event_type)) -%}
    {{ return(adapter.dispatch('bronze', 'pharmaflow')(event_type, src)) }}
{%- endmacro %}

{% macro default__bronze(event_type, src) -%}
    {{ return(src) }}
{%- endmacro %}

{#
  duckdb: the bronze view made by this run's on-run-start hook, so that every model and test of
  one build reads the same snapshot of committed files; when the view does not exist (the hook
  did not run, e.g. `dbt compile` on a new warehouse), the select over the files itself.
#}
{% macro duckdb__bronze(event_type, src) -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select count(*) from information_schema.tables"
            ~ " where table_catalog = '" ~ src.database ~ "' and table_schema = '" ~ src.schema ~ "'"
            ~ " and table_name = '" ~ src.identifier ~ "'") -%}
        {%- if found.columns[0].values()[0] > 0 -%}
            {{ return(src) }}
        {%- endif -%}
    {%- endif -%}
    {{ return('(\n' ~ pf_bronze_select_sql(event_type) ~ '\n)') }}
{%- endmacro %}

{#
  duckdb, execute time: the committed Parquet files of one event type, sorted. A batch is
  committed once its manifest <lake_dir>/_manifests/<batch_id>.json exists (docs/lake-layout.md):
  files of uncommitted batches (crash debris) and in-flight temporary files (`.tmp-…`) are left
  out. var('bronze_require_manifest', true) = false reads every part-*.parquet file.
#}
{% macro pf_bronze_files(event_type) -%}
    {%- set lake = pf_lake_dir() | replace("'", "''") -%}
    {%- set glob = pf_bronze_glob(event_type) | replace("'", "''") -%}
    {%- set sql -%}
        select file
        from glob('{{ glob }}')
        where regexp_matches(file, '/part-[^/]+\.parquet$')
        {%- if var('bronze_require_manifest', true) %}
          and regexp_extract(file, '/part-([^/]+)\.parquet$', 1) in (
              select regexp_extract(file, '/([^/]+)\.json$', 1)
              from glob('{{ lake }}/_manifests/*.json')
          )
        {%- endif %}
        order by file
    {%- endset -%}
    {{ return(run_query(sql).columns[0].values() | list) }}
{%- endmacro %}

{#
  duckdb: the select over the committed Parquet files of one event type (an explicit file list:
  a snapshot), or the empty typed select when there are none. Nothing is read at parse time.
#}
{% macro pf_bronze_select_sql(event_type, files=none) -%}
    {%- if files is none -%}
        {%- set files = pf_bronze_files(event_type) if execute else [] -%}
    {%- endif -%}
    {%- if files | length > 0 -%}
    select
    {%- for name, dtype in pf_bronze_columns() %}
        {%- if name in ('event_version', 'source_partition', 'source_offset') %}
        cast({{ name }} as {{ dtype }}) as {{ name }}{{ ',' if not loop.last }}
        {%- elif name == 'payload' %}
        {#- bronze keeps the whole event as it arrived; models read its payload -#}
        cast(json_extract(event_json, '$.payload') as {{ dtype }}) as payload{{ ',' if not loop.last }}
        {%- else %}
        {{ name }}{{ ',' if not loop.last }}
        {%- endif %}
    {%- endfor %}
    from read_parquet(
        [
        {%- for f in files %}
            '{{ f | replace("'", "''") }}'{{ ',' if not loop.last }}
        {%- endfor %}
        ],
        union_by_name = true,
        hive_partitioning = false
    )
    {%- else -%}
    {{ pf_empty_bronze_select() }}
    {%- endif -%}
{%- endmacro %}

{#
  on-run-start hook. duckdb: (re)create one view per event type in schema `bronze` over the
  files committed at this moment (or empty), so the `bronze` sources exist (source tests, ad-hoc
  queries, lineage) and the whole build reads one snapshot. Other adapters: nothing (bronze
  tables are loaded there by ingest).
#}
{% macro pf_create_bronze_views() -%}
    {{ return(adapter.dispatch('pf_create_bronze_views', 'pharmaflow')()) }}
{%- endmacro %}

{% macro default__pf_create_bronze_views() -%}
    {%- if execute -%}
        {%- do pf_snapshot_unread_batches() -%}
    {%- endif -%}
    select 1 as noop
{%- endmacro %}

{% macro duckdb__pf_create_bronze_views() -%}
    {%- if execute -%}
        {%- set files_table = pf_committed_files_relation() -%}
        {%- do run_query('create schema if not exists ' ~ adapter.quote(target.database) ~ '.bronze') -%}
        {%- do run_query('create or replace table ' ~ files_table
                         ~ ' (event_type varchar, batch_id varchar, file varchar)') -%}
        {%- for event_type in pf_event_types() -%}
            {%- set files = pf_bronze_files(event_type) -%}
            {%- set view = api.Relation.create(database=target.database, schema='bronze',
                                               identifier=pf_event_table_name(event_type), type='view') -%}
            {%- do run_query('create or replace view ' ~ view ~ ' as\n' ~ pf_bronze_select_sql(event_type, files)) -%}
            {%- if files | length > 0 -%}
                {%- do run_query('insert into ' ~ files_table ~ ' select * from (values '
                    ~ pf_files_values(event_type, files) ~ ')') -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do pf_snapshot_unread_batches() -%}
    {%- endif -%}
    select 1 as noop
{%- endmacro %}

{# duckdb, spark: the table listing this run's snapshot of committed files, per event type and batch. #}
{% macro pf_committed_files_relation() -%}
    {{ return(api.Relation.create(database=target.get('database'), schema='bronze',
                                  identifier='_committed_files', type='table')) }}
{%- endmacro %}

{% macro pf_files_values(event_type, files) -%}
    {%- for f in files -%}
        ('{{ event_type }}', '{{ f.split('/')[-1][5:-8] | replace("'", "''") }}', '{{ f | replace("'", "''") }}'){{ ', ' if not loop.last }}
    {%- endfor -%}
{%- endmacro %}

{#
  The bronze batches the warehouse has not read yet, per event type, taken once when the run
  starts (on-run-start): the committed batches none of whose rows is in the type's silver table
  or in silver._rejected. Both the silver model and silver_rejected read exactly these batches
  in the run, so what silver leaves out, silver_rejected sees; a batch whose every row was set
  aside is read once, like any other. Table bronze._unread_batches (event_type, batch_id).
#}
{% macro pf_unread_batches_relation() -%}
    {{ return(api.Relation.create(database=target.get('database'), schema=pf_schema_name('bronze'),
                                  identifier='_unread_batches', type='table')) }}
{%- endmacro %}

{% macro pf_snapshot_unread_batches() -%}
    {%- set unread = pf_unread_batches_relation() -%}
    {%- set silver_schema = pf_schema_name('silver') -%}
    {%- set existing = pf_schema_table_names(silver_schema) -%}
    {%- set rejected = api.Relation.create(database=target.get('database'), schema=silver_schema, identifier='_rejected') -%}
    {%- set selects = [] -%}
    {%- for event_type in pf_event_types() -%}
        {%- set name = pf_event_table_name(event_type) -%}
        {%- set silver = api.Relation.create(database=target.get('database'), schema=silver_schema, identifier=name) -%}
        {%- set sql -%}
        select distinct cast('{{ event_type }}' as {{ dbt.type_string() }}) as event_type, batches.batch_id
        from ({{ pf_committed_batches_sql(event_type) }}) as batches
        where 1 = 1
        {%- if name in existing %}
          and not exists (select 1 from {{ silver }} as kept where kept.ingest_batch_id = batches.batch_id)
        {%- endif %}
        {%- if '_rejected' in existing %}
          and not exists (
              select 1 from {{ rejected }} as set_aside
              where set_aside.model = 'silver_{{ name }}' and set_aside.ingest_batch_id = batches.batch_id
          )
        {%- endif %}
        {%- endset -%}
        {%- do selects.append(sql) -%}
    {%- endfor -%}
    {%- do run_query('drop table if exists ' ~ unread) -%}
    {%- do run_query('create table ' ~ unread ~ ' as\n' ~ selects | join('\nunion all\n')) -%}
    {%- if target.type not in ('duckdb', 'spark', 'bigquery') -%}
        {#- a hook runs in a transaction on PostgreSQL; Spark SQL has no transactions, and each
            BigQuery statement is its own job (a bare commit there is an error) -#}
        {%- do run_query('commit') -%}
    {%- endif -%}
{%- endmacro %}

{# The names of the tables and views of a schema, at execute time. Spark has no
   information_schema: macros/spark/bronze.sql. #}
{% macro pf_schema_table_names(schema) -%}
    {{ return(adapter.dispatch('pf_schema_table_names', 'pharmaflow')(schema)) }}
{%- endmacro %}

{% macro default__pf_schema_table_names(schema) -%}
    {%- set found = run_query(
        "select table_name from information_schema.tables where table_schema = '" ~ schema ~ "'"
        ~ (" and table_catalog = '" ~ target.database ~ "'" if target.type == 'duckdb' else '')) -%}
    {{ return(found.columns[0].values() | list) }}
{%- endmacro %}

{# The distinct committed batch ids of one event type, as a select of `batch_id`. #}
{% macro pf_committed_batches_sql(event_type) -%}
    {{ return(adapter.dispatch('pf_committed_batches_sql', 'pharmaflow')(event_type)) }}
{%- endmacro %}

{% macro default__pf_committed_batches_sql(event_type) -%}
    {#- hooks have no source(): the relation the bronze source names -#}
    select distinct batch_id from {{ api.Relation.create(database=target.get('database'),
        schema=pf_schema_name('bronze'), identifier=pf_event_table_name(event_type)) }}
{%- endmacro %}

{% macro duckdb__pf_committed_batches_sql(event_type) -%}
    select distinct batch_id from {{ pf_committed_files_relation() }} where event_type = '{{ event_type }}'
{%- endmacro %}

{#
  Bronze rows of the batches not read yet (bronze._unread_batches) on an incremental run, all
  of bronze on a full build. duckdb: a select over only those batches' files, from this run's
  snapshot; elsewhere: the bronze table filtered on batch_id.
#}
{% macro pf_bronze_unread(event_type) -%}
    {%- set all_rows = bronze(event_type) -%}
    {%- if not is_incremental() -%}
        {{ return(all_rows) }}
    {%- endif -%}
    {{ return(adapter.dispatch('pf_bronze_unread', 'pharmaflow')(event_type, all_rows)) }}
{%- endmacro %}

{% macro default__pf_bronze_unread(event_type, all_rows) -%}
    {{ return('(select * from ' ~ all_rows ~ ' as all_rows where batch_id in (select batch_id from '
              ~ pf_unread_batches_relation() ~ " where event_type = '" ~ event_type ~ "'))") }}
{%- endmacro %}

{% macro duckdb__pf_bronze_unread(event_type, all_rows) -%}
    {%- set files = [] -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select file from " ~ pf_committed_files_relation()
            ~ " where event_type = '" ~ event_type ~ "'"
            ~ " and batch_id in (select batch_id from " ~ pf_unread_batches_relation()
            ~ " where event_type = '" ~ event_type ~ "')"
            ~ " order by file") -%}
        {%- set files = found.columns[0].values() | list -%}
    {%- endif -%}
    {{ return('(\n' ~ pf_bronze_select_sql(event_type, files) ~ '\n)') }}
{%- endmacro %}
