{{ config(
    alias='manufacturing_lab_result',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.manufacturing_lab_result: one row per distinct `manufacturing.lab.result` event.
  A LIMS test result for a batch, with spec limits and outcome (PASS, FAIL, CONDITIONAL).
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('test_id', 'string'),
    ('batch_id', 'string'),
    ('test_name', 'string'),
    ('result', 'double'),
    ('unit', 'string'),
    ('spec_min', 'double'),
    ('spec_max', 'double'),
    ('outcome', 'string'),
    ('analyst_id', 'string')
] -%}

{{ pf_silver_select('manufacturing.lab.result', payload_columns) }}
