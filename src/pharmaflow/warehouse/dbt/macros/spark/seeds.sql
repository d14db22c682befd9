{#
  Seeds on Spark: dbt-spark's own seed macros (create the table, insert the rows), overridden
  here (dbt dispatches to the root project's `spark__` macro first) for two reasons:
    * dbt_project.yml pins the seed types in the names DuckDB and PostgreSQL share (`varchar`,
      `timestamp`, `decimal(12,2)`, ...); Spark has no length-less `varchar` (nor `text`,
      `double precision`): pf_spark_type names Spark's type for each;
    * dbt-spark binds every value as '<value>' text: a null becomes the string 'None' and a
      quote in a reference file (St. Mary's) breaks the statement. Rows are written as SQL
      literals instead: null, true / false, numbers, escaped strings, each cast to the type.
#}

{% macro pf_spark_type(dtype) -%}
    {%- set lowered = dtype | string | trim | lower -%}
    {%- if lowered in ('varchar', 'text', 'char') or lowered.startswith('varchar(') or lowered.startswith('character varying') -%}
        {{ return('string') }}
    {%- elif lowered == 'double precision' -%}
        {{ return('double') }}
    {%- endif -%}
    {{ return(dtype) }}
{%- endmacro %}

{% macro pf_spark_seed_type(model, agate_table, index, col_name) -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {{ return(pf_spark_type(column_override.get(col_name, adapter.convert_type(agate_table, index)))) }}
{%- endmacro %}

{% macro pf_spark_literal(value) -%}
    {%- if value is none -%}
        {{ return('null') }}
    {%- elif value is sameas true -%}
        {{ return('true') }}
    {%- elif value is sameas false -%}
        {{ return('false') }}
    {%- elif value is number -%}
        {{ return(value | string) }}
    {%- endif -%}
    {{ return(pf_spark_sql_string(value)) }}
{%- endmacro %}

{% macro spark__create_csv_table(model, agate_table) %}
  {%- set quote_seed_column = model['config'].get('quote_columns', None) -%}
  {% set sql %}
    create table {{ this.render() }} (
        {%- for col_name in agate_table.column_names -%}
            {%- set column_name = (col_name | string) -%}
            {{ adapter.quote_seed_column(column_name, quote_seed_column) }} {{ pf_spark_seed_type(model, agate_table, loop.index0, col_name) }} {%- if not loop.last -%}, {%- endif -%}
        {%- endfor -%}
    )
    {{ file_format_clause() }}
    {{ partition_cols(label="partitioned by") }}
    {{ clustered_cols(label="clustered by") }}
    {{ location_clause() }}
    {{ comment_clause() }}
  {% endset %}

  {% call statement('_') -%}
    {{ sql }}
  {%- endcall %}

  {{ return(sql) }}
{% endmacro %}

{% macro spark__load_csv_rows(model, agate_table) %}
  {%- set types = [] -%}
  {%- for col_name in agate_table.column_names -%}
      {%- do types.append(pf_spark_seed_type(model, agate_table, loop.index0, col_name)) -%}
  {%- endfor -%}
  {%- set statements = [] -%}
  {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
      {%- set sql -%}
          insert into {{ this.render() }} values
          {%- for row in chunk %}
          ({%- for value in row -%}
              cast({{ pf_spark_literal(value) }} as {{ types[loop.index0] }}){{ ', ' if not loop.last }}
          {%- endfor -%}){{ ',' if not loop.last }}
          {%- endfor %}
      {%- endset -%}
      {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
      {%- if loop.index0 == 0 -%}
          {%- do statements.append(sql) -%}
      {%- endif -%}
  {%- endfor -%}
  {#- the SQL of the first chunk, for the compiled files (as dbt's own seed macros) -#}
  {{ return(statements[0] if statements else '') }}
{% endmacro %}
