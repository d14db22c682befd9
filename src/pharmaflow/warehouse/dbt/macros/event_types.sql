{#
  The event types of docs/contracts.md. One bronze partition, one bronze source table and one
  silver model per type. Names: `pharmacy.order.placed` -> `pharmacy_order_placed`
  (bronze view / silver table) and model `silver_pharmacy_order_placed`.
#}
{% macro pf_event_types() -%}
    {{ return([
        'pharmacy.order.placed',
        'pharmacy.order.insurance_validated',
        'pharmacy.order.filled',
        'pharmacy.order.shipped',
        'pharmacy.order.delivered',
        'pharmacy.order.cancelled',
        'manufacturing.batch.status',
        'manufacturing.sensor.reading',
        'manufacturing.lab.result',
        'manufacturing.deviation.opened',
        'manufacturing.deviation.closed',
        'logistics.shipment.created',
        'logistics.shipment.scanned',
        'logistics.shipment.delivered',
        'logistics.shipment.exception',
        'logistics.temperature.reading',
        'feedback.survey.submitted',
        'sales.sale.completed',
    ]) }}
{%- endmacro %}

{% macro pf_event_table_name(event_type) -%}
    {{ return(event_type | replace('.', '_')) }}
{%- endmacro %}
