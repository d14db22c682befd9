{{ config(
    alias='pharmacy_order_placed',
    partition_by=pf_bq_partition('event_time'),
    cluster_by=pf_bq_cluster(['key']),
) }}
{#- BigQuery only (macros/bigquery.sql): day partitions of event time, as events are read by
    period; clustered by the envelope key, which gold's incremental rebuilds select by. #}
{#
  silver.pharmacy_order_placed: one row per distinct `pharmacy.order.placed` event.
  A pharmacy order was placed. The patient arrives already protected by ingest
  (docs/lake-layout.md): only the pseudonymous key and Safe-Harbor-safe attributes exist in bronze,
  and only those are selected here.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('order_id', 'string'),
    ('pharmacy_id', 'string'),
    ('payer_id', 'string'),
    ('ndc', 'string'),
    ('quantity', 'int'),
    ('days_supply', 'int'),
    ('priority', 'string'),
    ('patient_key', 'string', 'patient.patient_key'),
    ('birth_year', 'int', 'patient.birth_year'),
    ('age_90_plus', 'boolean', 'patient.age_90_plus'),
    ('patient_state', 'string', 'patient.state'),
    ('patient_zip3', 'string', 'patient.zip3')
] -%}

{{ pf_silver_select('pharmacy.order.placed', payload_columns) }}
