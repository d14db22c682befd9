{#
  Incremental builds.

  Silver (one table per event type) appends only what it has not seen: on each run it reads the
  bronze files of committed batches that no row of the table comes from yet, and keeps events
  whose event_id is not in the table yet. Bronze files are immutable, so a batch read once never
  has to be read again.

  Gold facts are keyed (order_id, batch_id, shipment_id, ...). A run finds the keys touched by
  silver rows ingested since the newest ingest_time the fact already holds (minus the lookback,
  var('late_lookback_hours'), for batches committed out of ingest-time order), recomputes those
  keys from ALL their silver rows and replaces them (delete+insert on the key). Because a key
  is always recomputed from everything known about it, a late or out-of-order event corrects
  exactly the rows it belongs to, and the result equals a full refresh. Every incremental fact
  carries `last_ingest_time` (the newest ingest_time among the events behind the row): that is
  its watermark.

  Usage in a gold fact keyed by order_id:

      {{ config(materialized='incremental', unique_key='order_id',
                incremental_strategy='delete+insert', on_schema_change='fail') }}
      with changed_keys as (
          {{ pf_changed_keys('order_id', [
                ('silver_pharmacy_order_placed', 'order_id'),
                ('silver_pharmacy_order_filled', 'order_id'),
          ]) }}
      ),
      placed_events as (
          select * from {{ ref('silver_pharmacy_order_placed') }}
          where {{ pf_key_changed('order_id', 'changed_keys') }}
      ), ...

  Aggregates over gold facts (daily summaries, KPIs) and dimensions stay `table`: they are
  small and recomputing them is cheaper than tracking what changed.
#}

{#
  The ingest_time from which silver rows count as new for this incremental model; the
  beginning of time while the model is still empty (an empty table has no watermark, and
  without the coalesce it would stay empty for good).
#}
{% macro pf_incremental_since() -%}
    {%- set minutes = (var('late_lookback_hours', 3) | float * 60) | int -%}
    {#- the cast: dbt.dateadd gives a DATETIME on BigQuery, which neither compares with nor
        coalesces to a TIMESTAMP there (a no-op elsewhere) -#}
    coalesce(
        cast({{ dbt.dateadd('minute', -minutes, '(select max(last_ingest_time) from ' ~ this ~ ')') }}
             as {{ dbt.type_timestamp() }}),
        {{ pf_min_timestamp() }}
    )
{%- endmacro %}

{# The keys (as `key_name`) of the rows of a silver model ingested since the watermark. #}
{% macro pf_new_keys(model, key_expr, key_name) -%}
    select {{ key_expr }} as {{ key_name }}
    from {{ ref(model) }}
    where ingest_time >= {{ pf_incremental_since() }}
{%- endmacro %}

{#
  The keys to recompute: a select of one column, `key_name`. `sources` is a list of
  (silver model name, key expression) or of raw selects (strings) that return `key_name` for
  rows that are new (a raw select can use pf_new_keys() or pf_incremental_since()). On a full build: no rows
  (and pf_key_changed() is true for every row).
#}
{% macro pf_changed_keys(key_name, sources) -%}
    {%- if is_incremental() -%}
        {%- for src in sources %}
    {% if src is string -%}
    {{ src }}
    {%- else -%}
    {{ pf_new_keys(src[0], src[1], key_name) }}
    {%- endif %}
    {{ 'union distinct' if not loop.last }}
        {%- endfor %}
    {%- else %}
    select cast(null as {{ dbt.type_string() }}) as {{ key_name }}
    where 1 = 0
    {%- endif -%}
{%- endmacro %}

{#
  Filter for the rows behind changed keys: `key_expr in (select key_name from changed_cte)`
  on an incremental run, always true on a full build. `key_exprs` / `key_names` may be lists
  for a composite key.
#}
{% macro pf_key_changed(key_exprs, changed_cte, key_names=none) -%}
    {%- if is_incremental() -%}
        {%- set exprs = [key_exprs] if key_exprs is string else key_exprs -%}
        {%- set names = exprs if key_names is none else ([key_names] if key_names is string else key_names) -%}
        {%- if exprs | length == 1 -%}
    {{ exprs[0] }} in (select {{ names[0] }} from {{ changed_cte }})
        {%- else -%}
    exists (
        select 1 from {{ changed_cte }} as changed
        where {% for e in exprs %}changed.{{ names[loop.index0] }} = {{ e }}{{ ' and ' if not loop.last }}{% endfor %}
    )
        {%- endif -%}
    {%- else -%}
    1 = 1
    {%- endif -%}
{%- endmacro %}

{# The newest of several ingest_time expressions (nulls ignored). #}
{% macro pf_greatest(exprs) -%}
    {%- if exprs | length == 1 -%}
    {{ exprs[0] }}
    {%- else -%}
    greatest({% for e in exprs %}coalesce({{ e }}, {{ pf_min_timestamp() }}){{ ', ' if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{% macro pf_min_timestamp() -%}
    cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro pf_max_timestamp() -%}
    cast('9999-12-31 00:00:00' as {{ dbt.type_timestamp() }})
{%- endmacro %}
