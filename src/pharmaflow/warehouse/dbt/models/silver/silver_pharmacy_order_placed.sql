{{ config(alias='pharmacy_order_placed') }}
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

with bronze_events as (
    select * from {{ bronze('pharmacy.order.placed') }} as bronze_rows
),

deduped as (
    {{ pf_dedupe_events('bronze_events') }}
),

parsed as (
    select
        deduped.*,
        {{ pf_json_parse('payload', payload_columns) }} as p
    from deduped
)

select
    {{ pf_envelope_columns() }},
    {{- pf_payload_columns('p', payload_columns) }},
    {{ pf_provenance_columns() }}
from parsed
