{#
  gold._rejected (model gold_rejected): the valid events a gold model did not use, and why.
  The same columns as silver._rejected (event_id, event_type, model, rule, reason,
  ingest_batch_id, ingest_time), so the two read as one list of what did not make it.

  A silver event breaks no contract, yet can break a gold business rule, e.g. a delivery
  timestamped before its order was placed (clock skew, a back-dated scan). Failing the build
  for it would stop every report over one event; using it would show a negative fulfilment
  time. So the fact leaves it out of what the rule protects and it is listed here:

    model                  rule                      event                         not used for
    fact_order_lifecycle   filled_before_placed      pharmacy.order.filled         the whole order row
    fact_order_lifecycle   delivered_before_placed   pharmacy.order.delivered      the whole order row
    fact_shipment          delivered_before_pickup   logistics.shipment.delivered  delivered_at, transit, on_time, status
    fact_deviation         closed_before_opened      manufacturing.deviation.closed  the closure
    fact_batch_production  yield_above_110_pct       manufacturing.batch.status    the yield (the event still completes the batch)

  Each rule is a macro of macros/gold_rules.sql, which the fact applies to the keys it rebuilds
  and this model to all of silver: the list always matches what the facts left out, on an
  incremental build as on a full refresh. Rebuilt on every run (a table), so an event that a
  later event makes valid again (an earlier placement that arrives late) leaves the list.
  Grain: (event_id, model, rule).
#}

{{ config(alias='_rejected') }}

with placed_events as (
    select * from {{ ref('silver_pharmacy_order_placed') }}
),

first_placement as (
    {{ pf_pick_one('placed_events', 'order_id', pf_event_order('first')) }}
),

opened_events as (
    select * from {{ ref('silver_manufacturing_deviation_opened') }}
),

first_opening as (
    {{ pf_pick_one('opened_events', 'deviation_id', pf_event_order('first')) }}
),

batch_status as (
    select * from {{ ref('silver_manufacturing_batch_status') }}
),

latest_status as (
    {{ pf_pick_one('batch_status', 'batch_id', pf_event_order('latest')) }}
),

completion_events as (
    select * from batch_status where status = 'COMPLETED'
),

latest_completion as (
    {{ pf_pick_one('completion_events', 'batch_id', pf_event_order('latest')) }}
),

rejected as (
    {{ pf_reject_before_placement(ref('silver_pharmacy_order_filled'), 'first_placement',
                                  'filled_before_placed', 'filled') }}
    union all
    {{ pf_reject_before_placement(ref('silver_pharmacy_order_delivered'), 'first_placement',
                                  'delivered_before_placed', 'delivered') }}
    union all
    {{ pf_reject_delivery_before_pickup(ref('silver_logistics_shipment_delivered'),
                                        ref('silver_logistics_shipment_created'),
                                        ref('silver_logistics_shipment_scanned')) }}
    union all
    {{ pf_reject_closure_before_opening(ref('silver_manufacturing_deviation_closed'),
                                        'first_opening') }}
    union all
    {{ pf_reject_implausible_yield('latest_completion', 'latest_status') }}
)

select
    event_id,
    event_type,
    model,
    rule,
    reason,
    ingest_batch_id,
    ingest_time
from rejected
