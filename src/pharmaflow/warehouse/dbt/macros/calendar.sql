{#
  The warehouse calendar: the days gold.dim_date holds and silver accepts event dates in.

  var('calendar_start') (default 2000-01-01, the start of ingest's plausible-timestamp window)
  and var('calendar_end') (default: empty, meaning the day the build runs plus 366 days, so the
  calendar never runs out under a platform that keeps running). Both are 'YYYY-MM-DD' strings;
  models and rules that need the bounds call these macros so they can never disagree.
#}

{% macro pf_calendar_start() -%}
    {{ return(var('calendar_start', '2000-01-01') | string) }}
{%- endmacro %}

{% macro pf_calendar_end() -%}
    {%- set configured = var('calendar_end', '') | string -%}
    {%- if configured -%}
        {{ return(configured) }}
    {%- endif -%}
    {%- set today = modules.datetime.date.today() -%}
    {{ return((today + modules.datetime.timedelta(days=366)).isoformat()) }}
{%- endmacro %}
