{{ config(alias='_rejected') }}
{#
  silver._rejected: the bronze events silver set aside instead of failing the build, one row per
  (silver model, event): the rule the event's kept copy breaks first and why, in words that
  never quote a payload value (it may be PHI). macros/set_aside.sql has the rules; README.md,
  "Set-aside rows", the user's side. Incremental like silver: a run judges the rows of the
  batches read in this run (bronze._unread_batches) that their silver model left out.
#}
{%- for event_type in pf_event_types() %}
{{ pf_set_aside_select(event_type) }}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
