{#
  Bronze on Spark: the Parquet lake read in place, with DuckDB's rules (macros/bronze.sql).

  The on-run-start hook (spark__pf_create_bronze_views) takes one snapshot of the lake:
    * bronze._lake_parts / bronze._lake_manifests: external `binaryFile` tables over
      <lake>/bronze (every part-*.parquet, recursively) and <lake>/_manifests (*.json). Only
      their path column is read, never the file contents: they are Spark's file listing (what
      glob() is on DuckDB). Spark's listing skips names starting with `.` or `_`, so in-flight
      `.tmp-…` files are never seen, as DuckDB's regex leaves them out.
    * bronze._committed_files (event_type, batch_id, file): the part files of committed
      batches (a manifest <batch_id>.json exists), or of every batch when
      var('bronze_require_manifest') is false. Crash debris is left out.
    * per event type with committed files: bronze._parts_<type>, an external Parquet table
      over <lake>/bronze/event_type=<type> with the bronze columns (docs/lake-layout.md; a file
      without a column reads it as null, as union_by_name does on DuckDB), and the view
      bronze.<type> over it, filtered on the committed file names of the snapshot (listed in
      the view), with `payload` extracted from event_json. A type without committed files gets
      the empty typed select instead, so no directory is created in the lake for it.
  Every model and test of the build therefore reads the files committed when it started, even
  while ingest keeps writing. Tables and views are dropped and made again on every run (they
  cost a listing, not a read of the data).
#}

{% macro spark__bronze(event_type, src) -%}
    {#- the hook made the view of this run; outside a run (dbt compile) it is the source too -#}
    {{ return(src) }}
{%- endmacro %}

{# The Spark types of the bronze Parquet columns as ingest writes them (lake/bronze.py). #}
{% macro pf_spark_bronze_file_columns() -%}
    {{ return([
        ('event_id', 'string'), ('event_type', 'string'), ('event_version', 'int'),
        ('event_time', 'timestamp'), ('source_system', 'string'), ('trace_id', 'string'),
        ('key', 'string'), ('event_json', 'string'), ('ingest_time', 'timestamp'),
        ('source', 'string'), ('source_uri', 'string'), ('source_partition', 'int'),
        ('source_offset', 'bigint'), ('batch_id', 'string'),
    ]) }}
{%- endmacro %}

{% macro pf_spark_sql_string(text) -%}
    '{{ text | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{% macro pf_spark_external_table(name, format, location, options, columns=none) -%}
    {%- do run_query('drop table if exists bronze.' ~ name) -%}
    {%- set ddl -%}
        create table bronze.{{ name }}
        {%- if columns %} (
            {%- for column, dtype in columns %}
            `{{ column }}` {{ dtype }}{{ ',' if not loop.last }}
            {%- endfor %}
        )
        {%- endif %}
        using {{ format }}
        options (
            {%- for key, value in options.items() %}
            '{{ key }}' = {{ pf_spark_sql_string(value) }}{{ ',' if not loop.last }}
            {%- endfor %}
        )
        location {{ pf_spark_sql_string(location) }}
    {%- endset -%}
    {%- do run_query(ddl) -%}
{%- endmacro %}

{% macro spark__pf_create_bronze_views() -%}
    {%- if execute -%}
        {%- set lake = pf_lake_dir() -%}
        {%- do run_query('create database if not exists bronze') -%}
        {%- do pf_spark_external_table('_lake_parts', 'binaryFile', lake ~ '/bronze',
                {'recursiveFileLookup': 'true', 'pathGlobFilter': 'part-*.parquet'}) -%}
        {%- do pf_spark_external_table('_lake_manifests', 'binaryFile', lake ~ '/_manifests',
                {'pathGlobFilter': '*.json'}) -%}
        {%- set types = [] -%}
        {%- for event_type in pf_event_types() -%}
            {%- do types.append("'" ~ event_type ~ "'") -%}
        {%- endfor -%}
        {%- do run_query('drop table if exists ' ~ pf_committed_files_relation()) -%}
        {%- set ddl -%}
            create table {{ pf_committed_files_relation() }} using parquet as
            select event_type, batch_id, file
            from (
                select
                    regexp_extract(path, '/event_type=([^/]+)/', 1) as event_type,
                    regexp_extract(path, '/part-([^/]+)[.]parquet$', 1) as batch_id,
                    path as file
                from bronze._lake_parts
            ) as parts
            where event_type in ({{ types | join(', ') }})
            {%- if var('bronze_require_manifest', true) %}
              and batch_id in (
                  select regexp_extract(path, '/([^/]+)[.]json$', 1) from bronze._lake_manifests
              )
            {%- endif %}
        {%- endset -%}
        {%- do run_query(ddl) -%}
        {%- set found = run_query('select event_type, batch_id from ' ~ pf_committed_files_relation()
                                  ~ ' group by event_type, batch_id order by event_type, batch_id') -%}
        {%- set batches = {} -%}
        {%- for row in found.rows -%}
            {%- do batches.setdefault(row[0], []).append(row[1]) -%}
        {%- endfor -%}
        {%- for event_type in pf_event_types() -%}
            {%- set name = pf_event_table_name(event_type) -%}
            {%- set view = api.Relation.create(schema='bronze', identifier=name, type='view') -%}
            {%- if event_type in batches -%}
                {%- do pf_spark_external_table('_parts_' ~ name, 'parquet',
                        lake ~ '/bronze/event_type=' ~ event_type,
                        {'recursiveFileLookup': 'true', 'pathGlobFilter': 'part-*.parquet'},
                        pf_spark_bronze_file_columns()) -%}
                {%- set select -%}
                    select
                    {%- for column, dtype in pf_bronze_columns() %}
                        {%- if column == 'payload' %}
                        {#- bronze keeps the whole event as it arrived; models read its payload -#}
                        get_json_object(event_json, '$.payload') as payload{{ ',' if not loop.last }}
                        {%- else %}
                        {{ column }}{{ ',' if not loop.last }}
                        {%- endif %}
                    {%- endfor %}
                    from bronze._parts_{{ name }}
                    where _metadata.file_name in (
                        {%- for batch_id in batches[event_type] %}
                        {{ pf_spark_sql_string('part-' ~ batch_id ~ '.parquet') }}{{ ',' if not loop.last }}
                        {%- endfor %}
                    )
                {%- endset -%}
            {%- else -%}
                {%- do run_query('drop table if exists bronze._parts_' ~ name) -%}
                {%- set select = pf_empty_bronze_select() -%}
            {%- endif -%}
            {%- do run_query('create or replace view ' ~ view ~ ' as\n' ~ select) -%}
        {%- endfor -%}
        {%- do pf_snapshot_unread_batches() -%}
    {%- endif -%}
    select 1 as noop
{%- endmacro %}

{# The committed batch ids of one event type, from this run's snapshot (as on DuckDB). #}
{% macro spark__pf_committed_batches_sql(event_type) -%}
    select distinct batch_id from {{ pf_committed_files_relation() }} where event_type = '{{ event_type }}'
{%- endmacro %}

{#
  Bronze rows of the batches not read yet: the batch ids are listed in the query (read from
  bronze._unread_batches when the model compiles), so Parquet's row-group statistics of
  batch_id (one value per file) let Spark skip every file already read, as DuckDB's explicit
  file list does.
#}
{% macro spark__pf_bronze_unread(event_type, all_rows) -%}
    {%- set batch_ids = [] -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select batch_id from " ~ pf_unread_batches_relation()
            ~ " where event_type = '" ~ event_type ~ "' order by batch_id") -%}
        {%- set batch_ids = found.columns[0].values() | list -%}
    {%- endif -%}
    {%- if batch_ids | length == 0 -%}
        {{ return('(\n' ~ pf_empty_bronze_select() ~ '\n)') }}
    {%- endif -%}
    {%- set literals = [] -%}
    {%- for batch_id in batch_ids -%}
        {%- do literals.append(pf_spark_sql_string(batch_id)) -%}
    {%- endfor -%}
    {{ return('(select * from ' ~ all_rows ~ ' as all_rows where batch_id in ('
              ~ literals | join(', ') ~ '))') }}
{%- endmacro %}

{# The names of the tables and views of a schema (empty while it does not exist). #}
{% macro spark__pf_schema_table_names(schema) -%}
    {%- set schemas = run_query("show databases like '" ~ schema ~ "'") -%}
    {%- if schemas.rows | length == 0 -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set found = run_query('show tables in ' ~ schema) -%}
    {%- set names = [] -%}
    {%- for row in found.rows if not row[2] -%}
        {%- do names.append(row[1]) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{#
  silver_rejected carries event_json through its anti-join with silver and extracts the
  payload only for the rows left (the bronze view would extract it for every row read).
#}
{% macro spark__pf_late_payload() -%}
    {{ return(('event_json', "get_json_object(event_json, '$.payload')")) }}
{%- endmacro %}
