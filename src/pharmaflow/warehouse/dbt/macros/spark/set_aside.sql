{#
  The set-aside rules on Spark (macros/set_aside.sql): the same rules, in the same order, over
  the string leaves of spark__pf_json_parse. A value is "missing" when its text is null (absent,
  or a JSON null) and "unreadable" when it has a text that pf_json_field does not convert (with
  ANSI mode off a failed cast is null). Repeated keys: json_object_keys lists every key of an
  object as written, a repeated one twice.
#}

{#- the event repeats its `payload` key: read only when the text holds '"payload"' twice -#}
{% macro spark__pf_set_aside_event_dup() -%}
    case when instr(substr(event_json, instr(event_json, '"payload"') + 9), '"payload"') > 0
        then size(array_distinct(json_object_keys(event_json))) < size(json_object_keys(event_json))
    end as pf_event_dup
{%- endmacro %}

{#- the JSON object at key level `i` (path `level`; '' the payload) repeats a key; null when
    it is not an object -#}
{% macro spark__pf_check_duplicate_key(level, i) -%}
    {%- set node = "get_json_object(payload, '$." ~ level ~ "')" if level else 'payload' -%}
    size(array_distinct(json_object_keys({{ node }}))) < size(json_object_keys({{ node }}))
{%- endmacro %}

{% macro spark__pf_check_missing(parsed, col, i) -%}
    ({{ pf_spark_json_text(parsed, col[2]) }} is null)
{%- endmacro %}

{% macro spark__pf_check_unreadable(parsed, col, i) -%}
    {%- if col[1] == 'string' -%}
    false
    {%- else -%}
    ({{ pf_spark_json_text(parsed, col[2]) }} is not null and {{ pf_json_field(parsed, col[2], col[1]) }} is null)
    {%- endif -%}
{%- endmacro %}

{% macro spark__pf_check_list_has_null(expr) -%}
    exists({{ expr }}, pf_element -> pf_element is null)
{%- endmacro %}
