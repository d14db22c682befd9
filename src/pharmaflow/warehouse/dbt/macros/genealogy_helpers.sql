{#
  Helpers of the lot genealogy models (models/gold/genealogy/lot_genealogy.sql, dim_lot.sql).
#}

{#
  A join clause that turns each element of a list column into its own row, for use right after
  the FROM item that holds the list:

      from shipments
      {{ pf_cross_join_unnest('shipments.lot_numbers', 'lot_number') }}

  gives one row per (shipment, element) with the element in column `lot_number`. A row whose
  list is empty or null yields no row (a shipment that names no lot links no lot).

  The list is DuckDB `VARCHAR[]` / PostgreSQL `text[]` / BigQuery `ARRAY<STRING>`. It is a join
  rather than `unnest()` in the select list because only the join form exists on every target:
  BigQuery has no set-returning functions in the select list. DuckDB and PostgreSQL accept a
  table function in FROM that refers to an earlier FROM item without LATERAL, and name its
  column with a column alias; BigQuery names the element with a plain alias.
#}
{% macro pf_cross_join_unnest(list_expr, element_column) -%}
    {{ return(adapter.dispatch('pf_cross_join_unnest', 'pharmaflow')(list_expr, element_column)) }}
{%- endmacro %}

{# duckdb, postgres #}
{% macro default__pf_cross_join_unnest(list_expr, element_column) -%}
    cross join unnest({{ list_expr }}) as {{ element_column }}_elements({{ element_column }})
{%- endmacro %}

{% macro bigquery__pf_cross_join_unnest(list_expr, element_column) -%}
    cross join unnest({{ list_expr }}) as {{ element_column }}
{%- endmacro %}
