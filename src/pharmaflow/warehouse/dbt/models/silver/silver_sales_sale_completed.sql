{{ config(alias='sales_sale_completed') }}
{#
  silver.sales_sale_completed: one row per distinct `sales.sale.completed` event.
  A point-of-sale sale at a pharmacy.
  Typed payload columns + envelope + provenance; duplicates of an event_id removed.
#}

{#- payload columns: (column, type[, json path]) -#}
{%- set payload_columns = [
    ('sale_id', 'string'),
    ('pharmacy_id', 'string'),
    ('ndc', 'string'),
    ('quantity', 'int'),
    ('unit_price', 'decimal'),
    ('promotion_code', 'string')
] -%}

with bronze_events as (
    select * from {{ bronze('sales.sale.completed') }} as bronze_rows
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
