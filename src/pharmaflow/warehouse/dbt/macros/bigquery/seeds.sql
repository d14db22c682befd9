{#
  Seeds on BigQuery. dbt-bigquery loads a seed with a load job whose schema takes the seed's
  `column_types` verbatim as BigQuery API field types; dbt_project.yml pins them in the
  standard names every other target reads (varchar, decimal(12,2), ...), which the BigQuery
  API refuses (it knows STRING, NUMERIC, ...). This is dbt-bigquery's own load_csv_rows with
  the types translated first (pf_bq_seed_column_types); the project file stays one list.
#}

{# A standard SQL type name as the BigQuery API's field type (decimal(p,s): the precision is
   the load's business, the values are the CSV's own text, so NUMERIC / BIGNUMERIC). #}
{% macro pf_bq_field_type(sql_type) -%}
    {%- set name = sql_type | trim | lower -%}
    {%- set decimal = modules.re.match('^(?:decimal|numeric)\\s*\\(\\s*(\\d+)\\s*,\\s*(\\d+)\\s*\\)$', name) -%}
    {%- if decimal -%}
        {{ return(pf_type_decimal(decimal.group(1) | int, decimal.group(2) | int).split('(')[0] | upper) }}
    {%- endif -%}
    {%- set names = {
        'varchar': 'STRING', 'text': 'STRING', 'char': 'STRING', 'string': 'STRING',
        'integer': 'INT64', 'int': 'INT64', 'bigint': 'INT64', 'smallint': 'INT64', 'int64': 'INT64',
        'double': 'FLOAT64', 'double precision': 'FLOAT64', 'float': 'FLOAT64', 'real': 'FLOAT64',
        'decimal': 'NUMERIC', 'numeric': 'NUMERIC',
        'boolean': 'BOOL', 'bool': 'BOOL',
        'timestamp': 'TIMESTAMP', 'date': 'DATE', 'datetime': 'DATETIME',
    } -%}
    {{ return(names.get(name, sql_type | upper)) }}
{%- endmacro %}

{% macro pf_bq_seed_column_types(column_types) -%}
    {%- set translated = {} -%}
    {%- for column, sql_type in (column_types or {}).items() -%}
        {%- do translated.update({column: pf_bq_field_type(sql_type)}) -%}
    {%- endfor -%}
    {{ return(translated) }}
{%- endmacro %}

{% macro bigquery__load_csv_rows(model, agate_table) %}
  {%- set column_override = pf_bq_seed_column_types(model['config'].get('column_types', {})) -%}
  {{ adapter.load_dataframe(model['database'], model['schema'], model['alias'],
                            agate_table, column_override, model['config']['delimiter']) }}

  {% call statement() %}
    alter table {{ this.render() }} set {{ bigquery_table_options(config, model) }}
  {% endcall %}

  {% if config.persist_relation_docs() and 'description' in model %}
    {{ adapter.update_table_description(model['database'], model['schema'], model['alias'], model['description']) }}
  {% endif %}
{% endmacro %}
