{#
  BigQuery versions of the set-aside checks (macros/set_aside.sql has the rules and their order).
  `p` is the payload parsed once into BigQuery's JSON type (bigquery__pf_json_parse); a check
  reads the raw JSON value at a column's path with JSON_QUERY / JSON_TYPE and compares it with
  the typed value pf_json_field made, so "absent or JSON null" (missing_value) and "present but
  does not read as the type" (unreadable_value) are told apart as on DuckDB.

  Repeated keys: BigQuery's JSON type keeps one copy of a repeated key, so no JSON function can
  see the repetition. A small JavaScript UDF (pf_json_repeated_keys, created by the on-run-start
  hook in `<dataset>_bronze`) scans the payload text once per row and says, for each object
  level the model reads ('' = the payload, 'patient', ...), whether that object repeats a key:
  the list `pf_keys`, as DuckDB's json_keys() list is. Its JavaScript is checked offline with
  node (tests/integration/warehouse/test_bigquery_compile.py).
#}

{# The UDF, qualified (dataset names are plain identifiers; the project may hold a dash). #}
{% macro pf_bq_repeated_keys_function() -%}
    {{ return('`' ~ target.database ~ '`.' ~ pf_schema_name('bronze') ~ '.pf_json_repeated_keys') }}
{%- endmacro %}

{# The JavaScript body: (doc, paths) -> one boolean per path (true: the object at
   that path repeats a key; false: it does not, or the path is not an object); null when `doc`
   is not JSON. Kept free of the sequence that closes a BigQuery raw string. #}
{% macro pf_bq_repeated_keys_js() -%}
var i = 0;
var wanted = {};
var found = [];
for (var w = 0; w < paths.length; w++) { wanted[paths[w]] = w; found.push(false); }
var scalar = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null/y;
function fail() { throw new Error('not JSON'); }
function space() { while (i < doc.length && ' \t\n\r'.indexOf(doc.charAt(i)) >= 0) { i++; } }
function string() {
  var start = i;
  i++;
  while (i < doc.length && doc.charAt(i) !== '"') { i += doc.charAt(i) === '\\' ? 2 : 1; }
  if (i >= doc.length) { fail(); }
  i++;
  return JSON.parse(doc.slice(start, i));
}
function value(path) {
  space();
  var c = doc.charAt(i);
  if (c === '{') {
    i++;
    var seen = {};
    var repeated = false;
    space();
    if (doc.charAt(i) === '}') { i++; } else {
      for (;;) {
        space();
        if (doc.charAt(i) !== '"') { fail(); }
        var key = string();
        if (Object.prototype.hasOwnProperty.call(seen, key)) { repeated = true; }
        seen[key] = true;
        space();
        if (doc.charAt(i) !== ':') { fail(); }
        i++;
        value(path === null ? null : (path === '' ? key : path + '.' + key));
        space();
        if (doc.charAt(i) === ',') { i++; continue; }
        if (doc.charAt(i) === '}') { i++; break; }
        fail();
      }
    }
    if (repeated && path !== null && Object.prototype.hasOwnProperty.call(wanted, path)) {
      found[wanted[path]] = true;
    }
    return;
  }
  if (c === '[') {
    i++;
    space();
    if (doc.charAt(i) === ']') { i++; return; }
    for (;;) {
      value(null);
      space();
      if (doc.charAt(i) === ',') { i++; continue; }
      if (doc.charAt(i) === ']') { i++; return; }
      fail();
    }
  }
  if (c === '"') { string(); return; }
  scalar.lastIndex = i;
  var m = scalar.exec(doc);
  if (m === null) { fail(); }
  i += m[0].length;
}
if (doc === null || paths === null) { return null; }
try {
  value('');
  space();
  if (i !== doc.length) { fail(); }
} catch (e) {
  return null;
}
return found;
{%- endmacro %}

{# The DDL of the UDF (the on-run-start hook runs it: bigquery__pf_create_bronze_views). #}
{% macro pf_bq_create_repeated_keys_function() -%}
create or replace function {{ pf_bq_repeated_keys_function() }}(doc STRING, paths ARRAY<STRING>)
returns ARRAY<BOOL>
language js
options (description = 'pharmaflow: per object path, whether the JSON text repeats a key there (set-aside rule duplicate_key)')
as r"""
{{ pf_bq_repeated_keys_js() }}
"""
{%- endmacro %}

{% macro bigquery__pf_set_aside_parse(payload_columns, payload) -%}
    {%- set levels = [] -%}
    {%- for level in pf_key_levels(payload_columns) -%}
        {%- do levels.append("'" ~ level ~ "'") -%}
    {%- endfor -%}
    {{ pf_bq_repeated_keys_function() }}({{ payload }}, [{{ levels | join(', ') }}])
{%- endmacro %}

{% macro bigquery__pf_check_duplicate_key(level, i) -%}
    pf_keys[safe_offset({{ i - 1 }})]
{%- endmacro %}

{#- the raw JSON value at a column's path (SQL null when absent, JSON null when null) -#}
{% macro pf_bq_raw_type(parsed, col) -%}
    json_type(json_query({{ parsed }}, {{ pf_bq_json_path(col[2]) }}))
{%- endmacro %}

{% macro bigquery__pf_check_missing(parsed, col, i) -%}
    coalesce({{ pf_bq_raw_type(parsed, col) }} = 'null', true)
{%- endmacro %}

{% macro bigquery__pf_check_unreadable(parsed, col, i) -%}
    {%- if col[1] == 'string' -%}
    false
    {%- elif col[1] == 'string_list' -%}
    coalesce({{ pf_bq_raw_type(parsed, col) }} not in ('array', 'null'), false)
    {%- else -%}
    (coalesce({{ pf_bq_raw_type(parsed, col) }} <> 'null', false)
        and {{ pf_json_field(parsed, col[2], col[1]) }} is null)
    {%- endif -%}
{%- endmacro %}

{% macro bigquery__pf_check_list_has_null(expr) -%}
    exists(select 1 from unnest({{ expr }}) as list_element where list_element is null)
{%- endmacro %}
