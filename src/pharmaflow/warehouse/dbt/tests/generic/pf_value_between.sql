{#
  Generic test: every non-null value of the column lies in [min_value, max_value]
  (either bound may be omitted). Fails with the offending rows.
#}
{% test pf_value_between(model, column_name, min_value=none, max_value=none) %}

select *
from {{ model }}
where {{ column_name }} is not null
  and (
      {%- if min_value is not none %} {{ column_name }} < {{ min_value }}{% endif %}
      {%- if min_value is not none and max_value is not none %} or{% endif %}
      {%- if max_value is not none %} {{ column_name }} > {{ max_value }}{% endif %}
  )

{% endtest %}
