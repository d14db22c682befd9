{#
  Generic test, the leakage guard of the ML feature models: a feature that carries the label in
  disguise (the label itself, a transform of it, or something only the outcome knows) tracks
  the label far more closely than any honest predictor can. Fails, naming the feature, when
  over the rows that have both:
    * binary label (binary=true): the feature separates the classes almost perfectly, i.e.
      its ROC-AUC as a score of the label (from average ranks, ties shared) is above max_auc
      or below 1 - max_auc;
    * numeric label: its Pearson or rank correlation with the label exceeds max_abs_corr in
      absolute value.

  label: an SQL expression of the label as a number (e.g. `case when is_late then 1 else 0
  end`); features: SQL expressions of the numeric features to check (a boolean feature: as a
  0/1 expression in the same way). A feature is judged on min_rows pairs or more: over a
  handful of rows (a new warehouse, a few odd sales) a tight fit is chance, not a leak, and
  must not stop the build.
#}
{% test pf_no_label_leak(model, label, features, binary=false, max_auc=0.97, max_abs_corr=0.95,
                         min_rows=100) %}

{%- for feature in features %}
select '{{ feature | replace("'", "''") }}' as feature, auc, pearson, spearman
from (
    select
        count(*) as pairs,
        {%- if binary %}
        (sum(case when y = 1 then rx end) - sum(y) * (sum(y) + 1) / 2.0)
            / nullif(sum(y) * (count(*) - sum(y)), 0) as auc,
        {%- else %}
        cast(null as {{ pf_type_double() }}) as auc,
        {%- endif %}
        -- no correlation where a side is constant (all-zero labels of a few odd sales): DuckDB
        -- returns NaN there, which compares greater than every number and would fail the test
        case when var_pop(x) > 0 and var_pop(y) > 0 then corr(x, y) end as pearson,
        case when var_pop(rx) > 0 and var_pop(ry) > 0 then corr(rx, ry) end as spearman
    from (
        select
            x,
            y,
            -- average ranks: tied values share the mean of the ranks they span
            rank() over (order by x) + (count(*) over (partition by x) - 1) / 2.0 as rx,
            rank() over (order by y) + (count(*) over (partition by y) - 1) / 2.0 as ry
        from (
            select
                cast({{ feature }} as {{ pf_type_double() }}) as x,
                cast({{ label }} as {{ pf_type_double() }}) as y
            from {{ model }}
        ) pairs
        where x is not null and y is not null
    ) ranked
) measures
where pairs >= {{ min_rows }} and (
    {%- if binary %}
    auc > {{ max_auc }} or auc < 1 - {{ max_auc }}
    {%- else %}
    abs(pearson) > {{ max_abs_corr }} or abs(spearman) > {{ max_abs_corr }}
    {%- endif %}
)
{% if not loop.last %}union all{% endif %}
{%- endfor %}

{% endtest %}
