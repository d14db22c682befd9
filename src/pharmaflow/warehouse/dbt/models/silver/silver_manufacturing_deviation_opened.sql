{{ config(alias='manufacturing_deviation_opened') }}
{#
  silver.manufacturing_deviation_opened: one row per distinct `manufacturing.deviation.opened` event.
  A quality deviation was opened against a batch (description scrubbed by ingest).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('deviation_id', 'string'),
    ('batch_id', 'string'),
    ('severity', 'string'),
    ('category', 'string'),
    ('description', 'string')
] -%}

{{ pf_silver_select('manufacturing.deviation.opened', payload_columns) }}
