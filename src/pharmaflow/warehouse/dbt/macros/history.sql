{#
  Reference-data history (SCD type 2).

  Each reference seed (facilities, products, carriers, payers) is snapshotted into
  `reference.<seed>_history` (snapshots/reference_history.yml, check strategy): a row version
  per change of its attributes, effective from the seed row's `updated_at`. The gold dims
  (dim_facility, dim_product, dim_carrier, dim_payer) expose the versions with
  valid_from / valid_to (half-open: valid_from <= t < valid_to) and is_current.

  Facts join the version valid when their event happened:

      from orders
      {{ pf_join_version('dim_facility', 'pharmacy', 'facility_id', 'orders.pharmacy_id',
                         'orders.placed_at') }}

  gives `pharmacy.region` as it was at placed_at. A null event time joins the current
  version.
#}
{% macro pf_join_version(dim, alias, key_column, key_expr, at_expr) -%}
left join {{ ref(dim) }} as {{ alias }}
    on {{ alias }}.{{ key_column }} = {{ key_expr }}
    and coalesce({{ at_expr }}, {{ pf_current_instant() }}) >= {{ alias }}.valid_from
    and coalesce({{ at_expr }}, {{ pf_current_instant() }}) < {{ alias }}.valid_to
{%- endmacro %}

{# A time inside every current version: just before the open end of history. #}
{% macro pf_current_instant() -%}
    cast('9999-12-30 00:00:00' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#
  The versions of one snapshotted seed as dimension rows: `<sk_name>` (surrogate key of the
  version), the seed's columns, version (1, 2, ...), valid_from (the first version reaches
  back to the beginning of time, so events older than the first load still find their
  facility), valid_to (open end 9999-12-31), is_current and changed_at (the seed's updated_at).
#}
{% macro pf_scd2_versions(snapshot_name, key_column) -%}
    select
        snap.*,
        row_number() over (partition by {{ key_column }} order by dbt_valid_from) as version,
        dbt_valid_to is null as is_current
    from {{ ref(snapshot_name) }} as snap
{%- endmacro %}

{% macro pf_scd2_validity() -%}
    case when version = 1 then {{ pf_min_timestamp() }} else dbt_valid_from end as valid_from,
    coalesce(dbt_valid_to, {{ pf_max_timestamp() }}) as valid_to,
    is_current,
    dbt_valid_from as changed_at
{%- endmacro %}
