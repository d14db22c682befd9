{{ config(alias='logistics_temperature_reading') }}
{#
  silver.logistics_temperature_reading: one row per distinct `logistics.temperature.reading` event.
  A cold-chain data-logger reading in a shipment, with its spec limits.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('shipment_id', 'string'),
    ('logger_id', 'string'),
    ('celsius', 'double'),
    ('spec_min', 'double'),
    ('spec_max', 'double')
] -%}

{{ pf_silver_select('logistics.temperature.reading', payload_columns) }}
