-- PHI guard: no silver or gold table has a column named after a direct patient identifier
-- (HIPAA Safe Harbor). The patient exists only as patient_key + birth_year / age_90_plus /
-- state / zip3.
{#- run after every silver and gold model (a catalog query alone gives dbt no dependency) #}
{%- for event_type in pf_event_types() %}
-- depends_on: {{ ref('silver_' ~ pf_event_table_name(event_type)) }}
{%- endfor %}
{#- every gold model (tests/unit/warehouse/test_phi_guard.py keeps this list whole) #}
{%- for model in ['daily_order_summary', 'daily_pharmacy_order_summary',
                  'daily_pharmacy_order_summary_local', 'dim_carrier', 'dim_date',
                  'dim_equipment', 'dim_facility', 'dim_lot', 'dim_patient', 'dim_payer',
                  'dim_product', 'fact_batch_production', 'fact_deviation',
                  'fact_order_lifecycle', 'fact_sales_daily', 'fact_sales_daily_local',
                  'fact_shipment', 'fact_shipment_temperature_hourly', 'fact_survey',
                  'gold_rejected', 'kpi_carrier_on_time', 'kpi_fulfilment', 'kpi_nps',
                  'kpi_quality', 'lot_genealogy', 'ml_demand_features',
                  'ml_shipment_features'] %}
-- depends_on: {{ ref(model) }}
{%- endfor %}

select table_schema, table_name, column_name
from ({{ pf_schema_columns(['silver', 'gold']) }}) as warehouse_columns
where lower(column_name) in (
      'patient_id', 'mrn', 'first_name', 'last_name', 'name_first', 'name_last', 'patient_name',
      'date_of_birth', 'dob', 'birth_date', 'phone', 'email', 'street', 'address', 'city',
      'zip', 'zip_code', 'ssn', 'member_id'
  )
