{#
  Use a model's custom schema as-is (`silver`, `gold`, `reference`) instead of dbt's default
  `<target_schema>_<custom_schema>`. Nodes without a custom schema land in the target schema.
  BigQuery: schemas are datasets of a shared project, so they get the profile's dataset as a
  prefix (`pharmaflow_silver`, `pharmaflow_gold`, ...: setting `bigquery_dataset`).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- elif target.type == 'bigquery' -%}
        {{ pf_schema_name(custom_schema_name | trim) }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

{# The physical schema of a logical one (`bronze`, `silver`, ...): the same name, except on
   BigQuery, where it is `<dataset prefix>_<name>`. Used by generate_schema_name and the
   `bronze` source. #}
{% macro pf_schema_name(name) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return(target.schema ~ '_' ~ name) }}
    {%- endif -%}
    {{ return(name) }}
{%- endmacro %}
