{#
  Bronze on BigQuery: tables `<dataset>_bronze.<event_type with _>` loaded before each build by
  pharmaflow.warehouse.load_bigquery (committed batches only, exactly once per batch, `payload`
  extracted from event_json by DuckDB exactly as the DuckDB views and the PostgreSQL loader do).
  So `bronze()` is the default (the `bronze` source), as `pf_bronze_unread` and
  `pf_committed_batches_sql` are: plain selects on those tables.

  The on-run-start hook (pf_create_bronze_views) creates the set-aside rules' JavaScript UDF
  and takes the run's snapshot of unread batches (`<dataset>_bronze._unread_batches`, the
  shared pf_snapshot_unread_batches; BigQuery runs each statement as its own job, no commit).
#}

{% macro bigquery__pf_create_bronze_views() -%}
    {%- if execute -%}
        {%- do run_query(pf_bq_create_repeated_keys_function()) -%}
        {%- do pf_snapshot_unread_batches() -%}
    {%- endif -%}
    select 1 as noop
{%- endmacro %}

{# The tables of a dataset, through the BigQuery API (tables.list): no query job, and a
   dataset that does not exist yet (the first build) simply has none. #}
{% macro bigquery__pf_schema_table_names(schema) -%}
    {%- set dataset = api.Relation.create(database=target.database, schema=schema) -%}
    {%- set names = [] -%}
    {%- for relation in adapter.list_relations_without_caching(dataset) -%}
        {%- do names.append(relation.identifier) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}
