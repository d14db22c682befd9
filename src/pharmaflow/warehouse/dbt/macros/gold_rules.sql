{#
  Gold set-asides: the business rules that a VALID event (one that passed ingest and silver)
  can still break, such as a delivery timestamped before its order was placed. Such an event
  does not fail the build; the gold fact leaves it out of what the rule protects (delivered_at,
  hours_to_deliver, yield_pct, ...) and gold._rejected (model gold_rejected) lists it with the
  rule and the reason, in the columns of silver._rejected: event_id, event_type, model, rule,
  reason, ingest_batch_id, ingest_time.

  Each rule is one macro over CTEs (or relations) of silver events, used twice: by the fact,
  over the events of the keys it rebuilds, to exclude the rejected events; and by
  gold_rejected, over all of silver, to list them. A rule only ever compares events of ONE
  key (an order, a shipment, a batch, a deviation), and an incremental fact rebuilds a key
  from all its events whenever one of them is new; so a placement that arrives after its
  delivery rebuilds the order and sets the delivery aside then, exactly as a full refresh
  would, and gold._rejected (rebuilt each run) agrees with the facts.

  Reasons name hours and percentages as decimals (never timestamps, whose text differs between
  engines), so DuckDB and PostgreSQL write the same reason.
#}

{# The gold._rejected columns of one set-aside event of `events` (an alias in scope). #}
{% macro pf_rejected_columns(events, model, rule, reason) -%}
    {{ events }}.event_id,
    {{ events }}.event_type,
    cast('{{ model }}' as {{ dbt.type_string() }}) as model,
    cast('{{ rule }}' as {{ dbt.type_string() }}) as rule,
    cast({{ reason }} as {{ dbt.type_string() }}) as reason,
    {{ events }}.ingest_batch_id,
    {{ events }}.ingest_time
{%- endmacro %}

{# A decimal expression as text (2 decimals), the same on every engine (BigQuery's NUMERIC
   keeps no scale, so a cast to text would drop trailing zeros there:
   macros/bigquery/sql_helpers.sql). #}
{% macro pf_decimal_text(expr) -%}
    {{ return(adapter.dispatch('pf_decimal_text', 'pharmaflow')(expr)) }}
{%- endmacro %}

{% macro default__pf_decimal_text(expr) -%}
    cast(cast({{ expr }} as decimal(14,2)) as {{ dbt.type_string() }})
{%- endmacro %}

{#
  Events of an order (fills, deliveries) timestamped before the order was placed (its FIRST
  placed event, as fact_order_lifecycle.placed_at). An order whose placement has not arrived
  sets nothing aside yet: it is rebuilt, and judged, when the placement arrives.
  rule: filled_before_placed | delivered_before_placed.
#}
{% macro pf_reject_before_placement(events, first_placement, rule, what) -%}
    select
        {{ pf_rejected_columns('early', 'fact_order_lifecycle', rule,
            "'" ~ what ~ " ' || " ~ pf_decimal_text(pf_hours_between('early.event_time', 'placement.event_time'))
            ~ " || ' h before the order was placed: not used for the order'") }}
    from {{ events }} as early
    inner join {{ first_placement }} as placement
        on placement.order_id = early.order_id
    where early.event_time < placement.event_time
{%- endmacro %}

{#
  Shipment deliveries timestamped before the shipment started moving: its first PICKED_UP scan,
  else (no pick-up scan) its first created event. Such a delivery would give a negative
  transit time and a delivery before the goods left. rule: delivered_before_pickup.
#}
{% macro pf_reject_delivery_before_pickup(deliveries, created_events, scan_events) -%}
    select
        {{ pf_rejected_columns('delivery', 'fact_shipment', 'delivered_before_pickup',
            "'delivered ' || " ~ pf_decimal_text(pf_hours_between('delivery.event_time', 'shipment_start.started_at'))
            ~ " || ' h before the shipment was ' || shipment_start.started_by"
            ~ " || ': not used for delivered_at, transit_hours, on_time or the status'") }}
    from {{ deliveries }} as delivery
    inner join (
        select
            shipment_id,
            coalesce(min(picked_up_at), min(created_at)) as started_at,
            case when min(picked_up_at) is not null then 'picked up' else 'created' end
                as started_by
        from (
            select shipment_id, event_time as picked_up_at, cast(null as {{ dbt.type_timestamp() }}) as created_at
            from {{ scan_events }}
            where status = 'PICKED_UP'
            union all
            select shipment_id, cast(null as {{ dbt.type_timestamp() }}), event_time
            from {{ created_events }}
        ) starts
        group by shipment_id
    ) as shipment_start
        on shipment_start.shipment_id = delivery.shipment_id
    where delivery.event_time < shipment_start.started_at
{%- endmacro %}

{#
  Deviation closures timestamped before the deviation was opened (its FIRST opened event).
  rule: closed_before_opened.
#}
{% macro pf_reject_closure_before_opening(closures, first_opening) -%}
    select
        {{ pf_rejected_columns('closure', 'fact_deviation', 'closed_before_opened',
            "'closed ' || " ~ pf_decimal_text(pf_days_between('closure.event_time', 'opening.event_time'))
            ~ " || ' days before the deviation was opened: not used (the deviation stays open)'") }}
    from {{ closures }} as closure
    inner join {{ first_opening }} as opening
        on opening.deviation_id = closure.deviation_id
    where closure.event_time < opening.event_time
{%- endmacro %}

{#
  The yield of a batch's LATEST COMPLETED event when it is above 110 % of the batch size (of
  the batch's latest status event, as fact_batch_production.yield_pct): a wrong unit or a
  wrong batch size. The event still completes the batch (final_status, completed_at); only
  its yield is not used (actual_yield_kg, yield_pct null; not in avg_yield_pct). The contract
  already refuses negative yields and non-positive sizes. rule: yield_above_110_pct.
#}
{% macro pf_reject_implausible_yield(latest_completion, latest_status) -%}
    select
        {{ pf_rejected_columns('completion', 'fact_batch_production', 'yield_above_110_pct',
            "'actual_yield_kg ' || " ~ pf_decimal_text('completion.actual_yield_kg')
            ~ " || ' is ' || " ~ pf_decimal_text(pf_safe_ratio('100 * completion.actual_yield_kg', 'batch.batch_size_kg', 'decimal(14,2)'))
            ~ " || ' % of batch_size_kg ' || " ~ pf_decimal_text('batch.batch_size_kg')
            ~ " || ' (plausible: 0-110 %): yield not used'") }}
    from {{ latest_completion }} as completion
    inner join {{ latest_status }} as batch
        on batch.batch_id = completion.batch_id
    where 100 * completion.actual_yield_kg > 110 * batch.batch_size_kg
{%- endmacro %}

{# Rows of `events` not set aside in `rejected` (a select of event_id). #}
{% macro pf_not_rejected(events, rejected) -%}
    select * from {{ events }}
    where not exists (
        select 1 from {{ rejected }} as rejected_event
        where rejected_event.event_id = {{ events }}.event_id
    )
{%- endmacro %}
