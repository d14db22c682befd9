{#
  gold.ml_shipment_features: one row per created shipment, the features the shipment-delay
  classifier (src/pharmaflow/ml/delay.py) reads, with its label.

  Point in time: the prediction time is created_at (the shipment's FIRST created event), and
  no feature uses anything the warehouse could not have known then:
    * the shipment's attributes come from its FIRST created event (an amendment arrives later);
      the origin / destination facility versions are those valid at created_at (SCD2); a
      patient's state comes from the order's first placed event, placed before created_at;
    * history features count only outcomes known before the UTC day of created_at began:
      shipments whose first delivery (fact_shipment.delivered_at) fell on one of the
      <history_days> (7 or 28) days before that day; volume features count shipments CREATED
      before this one (the previous day, or earlier the same day at the same origin).
  tests/integration/ml/test_shipment_features.py rebuilds a warehouse with every event after a
  cutoff removed and checks each feature of the shipments created before it is unchanged.

  distance_km: the great-circle distance between representative points of the origin's state
  and the destination's state (the patient's for an order; 0 within a state), the points listed
  below: the same figures as the simulator's STATE_POINTS (simulate/logistics.py). Null when a
  state is not in the list.

  Labels (never features; named label_*): label_is_late = the first delivery came after the
  delivery time promised at creation; null until delivered (a lost shipment stays null);
  label_known_at = that delivery's time. The leakage guard (tests/generic/pf_no_label_leak.sql)
  runs on every numeric feature in ml_shipment_features.yml.

  A plain table, rebuilt each run: the history features of every row move with the newest
  deliveries, so an incremental version would recompute most of it anyway.
#}

{%- set history_days = [7, 28] %}
{#- (state, latitude, longitude): keep equal to simulate/logistics.py STATE_POINTS -#}
{%- set state_points = [
    ('AL', 33.0, -86.8), ('AK', 61.4, -149.6), ('AZ', 33.4, -112.0), ('AR', 35.0, -92.4),
    ('CA', 35.5, -119.4), ('CO', 39.5, -105.2), ('CT', 41.5, -72.8), ('DE', 39.4, -75.6),
    ('DC', 38.9, -77.0), ('FL', 27.8, -81.6), ('GA', 33.3, -83.9), ('HI', 21.3, -157.9),
    ('ID', 43.6, -115.4), ('IL', 41.3, -88.4), ('IN', 40.0, -86.3), ('IA', 41.9, -93.1),
    ('KS', 38.5, -97.0), ('KY', 37.8, -85.3), ('LA', 30.7, -91.5), ('ME', 44.3, -69.9),
    ('MD', 39.1, -76.8), ('MA', 42.3, -71.4), ('MI', 42.9, -84.2), ('MN', 45.2, -93.6),
    ('MS', 32.6, -89.6), ('MO', 38.4, -92.2), ('MT', 46.6, -110.9), ('NE', 41.2, -97.3),
    ('NV', 36.4, -115.4), ('NH', 43.0, -71.5), ('NJ', 40.4, -74.4), ('NM', 34.6, -106.3),
    ('NY', 41.5, -74.6), ('NC', 35.6, -79.6), ('ND', 47.4, -99.3), ('OH', 40.5, -82.7),
    ('OK', 35.6, -97.0), ('OR', 44.7, -122.5), ('PA', 40.5, -77.0), ('RI', 41.8, -71.4),
    ('SC', 34.0, -81.1), ('SD', 43.9, -98.9), ('TN', 35.8, -86.4), ('TX', 30.9, -97.4),
    ('UT', 40.4, -111.9), ('VT', 44.1, -72.8), ('VA', 38.0, -77.8), ('WA', 47.3, -121.6),
    ('WV', 38.8, -80.9), ('WI', 43.7, -89.0), ('WY', 42.6, -107.4),
] %}
{%- set earth_radius_km = 6371.0 %}
{%- set float = pf_type_double() %}

with created_events as (
    select * from {{ ref('silver_logistics_shipment_created') }}
),

-- the shipment as it was created: its first created event
first_creation as (
    {{ pf_pick_one('created_events', 'shipment_id', pf_event_order('first')) }}
),

creation_lots as (
    select
        first_creation.shipment_id,
        count(distinct lot_number) as n_lots
    from first_creation
    {{ pf_cross_join_unnest('first_creation.lot_numbers', 'lot_number') }}
    group by first_creation.shipment_id
),

placed_events as (
    select * from {{ ref('silver_pharmacy_order_placed') }}
),

first_placement as (
    {{ pf_pick_one('placed_events', 'order_id', pf_event_order('first')) }}
),

state_points as (
    {%- for state, lat, lon in state_points %}
    select
        cast('{{ state }}' as {{ dbt.type_string() }}) as state,
        cast({{ lat }} as {{ float }}) as lat,
        cast({{ lon }} as {{ float }}) as lon
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

shipments as (
    select
        first_creation.shipment_id,
        first_creation.event_time as created_at,
        cast(first_creation.event_time as date) as created_day,
        first_creation.carrier_id,
        first_creation.service_level,
        first_creation.cold_chain,
        first_creation.origin_facility_id,
        origin.facility_type as origin_facility_type,
        origin.state as origin_state,
        case
            when first_creation.destination_facility_id is null then 'PATIENT'
            else destination.facility_type
        end as destination_type,
        case
            when first_creation.destination_facility_id is null then placement.patient_state
            else destination.state
        end as destination_state,
        first_creation.promised_delivery_time,
        coalesce(creation_lots.n_lots, 0) as n_lots
    from first_creation
    left join creation_lots on creation_lots.shipment_id = first_creation.shipment_id
    left join first_placement as placement
        on placement.order_id = first_creation.order_id
        and placement.event_time <= first_creation.event_time
    {{ pf_join_version('dim_facility', 'origin', 'facility_id', 'first_creation.origin_facility_id', 'first_creation.event_time') }}
    {{ pf_join_version('dim_facility', 'destination', 'facility_id', 'first_creation.destination_facility_id', 'first_creation.event_time') }}
),

-- outcomes: each shipment's first delivery, late against the promise made at creation
outcomes as (
    select
        shipments.shipment_id,
        shipments.carrier_id,
        shipments.service_level,
        shipments.origin_facility_id,
        fact.delivered_at,
        cast(fact.delivered_at as date) as delivered_day,
        case
            when fact.delivered_at is null or shipments.promised_delivery_time is null then null
            when fact.delivered_at > shipments.promised_delivery_time then 1
            else 0
        end as late
    from shipments
    inner join {{ ref('fact_shipment') }} as fact
        on fact.shipment_id = shipments.shipment_id
),

known_outcomes as (
    select * from outcomes where late is not null
),

lane_days as (
    select carrier_id, service_level, delivered_day, count(*) as delivered, sum(late) as late
    from known_outcomes
    group by carrier_id, service_level, delivered_day
),

origin_days as (
    select origin_facility_id, delivered_day, count(*) as delivered, sum(late) as late
    from known_outcomes
    group by origin_facility_id, delivered_day
),

{%- set longest = history_days | max %}

-- deliveries of the same carrier x service level on the days before the creation day
lane_history as (
    select
        shipments.shipment_id,
        {%- for days in history_days %}
        sum(case when lane_days.delivered_day >= cast({{ dbt.dateadd('day', -days, 'shipments.created_day') }} as date)
            then lane_days.delivered end) as delivered_{{ days }}d,
        sum(case when lane_days.delivered_day >= cast({{ dbt.dateadd('day', -days, 'shipments.created_day') }} as date)
            then lane_days.late end) as late_{{ days }}d{{ "," if not loop.last }}
        {%- endfor %}
    from shipments
    inner join lane_days
        on lane_days.carrier_id = shipments.carrier_id
        and lane_days.service_level = shipments.service_level
        and lane_days.delivered_day < shipments.created_day
        and lane_days.delivered_day >= cast({{ dbt.dateadd('day', -longest, 'shipments.created_day') }} as date)
    group by shipments.shipment_id
),

origin_history as (
    select
        shipments.shipment_id,
        sum(origin_days.delivered) as delivered_{{ longest }}d,
        sum(origin_days.late) as late_{{ longest }}d
    from shipments
    inner join origin_days
        on origin_days.origin_facility_id = shipments.origin_facility_id
        and origin_days.delivered_day < shipments.created_day
        and origin_days.delivered_day >= cast({{ dbt.dateadd('day', -longest, 'shipments.created_day') }} as date)
    group by shipments.shipment_id
),

origin_created_days as (
    select origin_facility_id, created_day, count(*) as created
    from shipments
    group by origin_facility_id, created_day
),

-- shipments created at the same origin earlier on the same UTC day (ties: not earlier)
origin_earlier_today as (
    select
        shipment_id,
        rank() over (
            partition by origin_facility_id, created_day order by created_at
        ) - 1 as created_earlier
    from shipments
),

distances as (
    select
        shipments.shipment_id,
        {{ pf_cast_decimal(
            '2 * ' ~ earth_radius_km ~ ' * asin(sqrt('
            ~ 'power(sin(' ~ pf_radians('dst.lat - org.lat') ~ ' / 2), 2)'
            ~ ' + cos(' ~ pf_radians('org.lat') ~ ') * cos(' ~ pf_radians('dst.lat') ~ ')'
            ~ ' * power(sin(' ~ pf_radians('dst.lon - org.lon') ~ ' / 2), 2)))',
            'decimal(8,1)') }} as distance_km
    from shipments
    inner join state_points as org on org.state = shipments.origin_state
    inner join state_points as dst on dst.state = shipments.destination_state
)

select
    shipments.shipment_id,
    shipments.created_at as prediction_time,
    shipments.created_at,
    shipments.carrier_id,
    shipments.service_level,
    shipments.cold_chain,
    shipments.origin_facility_id,
    shipments.origin_facility_type,
    shipments.origin_state,
    shipments.destination_type,
    shipments.destination_state,
    distances.distance_km,
    {{ pf_date_part('isodow', 'shipments.created_at') }} as created_weekday,
    {{ pf_date_part('hour', 'shipments.created_at') }} as created_hour,
    {{ pf_hours_between('shipments.created_at', 'shipments.promised_delivery_time') }}
        as promised_transit_hours,
    shipments.n_lots,
    {%- for days in history_days %}
    cast(coalesce(lane_history.delivered_{{ days }}d, 0) as {{ dbt.type_bigint() }})
        as lane_delivered_{{ days }}d,
    cast(lane_history.late_{{ days }}d as {{ float }})
        / nullif(lane_history.delivered_{{ days }}d, 0) as lane_late_rate_{{ days }}d,
    {%- endfor %}
    cast(coalesce(origin_history.delivered_{{ longest }}d, 0) as {{ dbt.type_bigint() }})
        as origin_delivered_{{ longest }}d,
    cast(origin_history.late_{{ longest }}d as {{ float }})
        / nullif(origin_history.delivered_{{ longest }}d, 0) as origin_late_rate_{{ longest }}d,
    cast(coalesce(previous_day.created, 0) as {{ dbt.type_bigint() }}) as origin_created_prev_day,
    cast(origin_earlier_today.created_earlier as {{ dbt.type_bigint() }})
        as origin_created_earlier_today,
    case when outcomes.late = 1 then true when outcomes.late = 0 then false end
        as label_is_late,
    case when outcomes.late is not null then outcomes.delivered_at end as label_known_at
from shipments
left join distances on distances.shipment_id = shipments.shipment_id
left join lane_history on lane_history.shipment_id = shipments.shipment_id
left join origin_history on origin_history.shipment_id = shipments.shipment_id
left join origin_created_days as previous_day
    on previous_day.origin_facility_id = shipments.origin_facility_id
    and previous_day.created_day = cast({{ dbt.dateadd('day', -1, 'shipments.created_day') }} as date)
left join origin_earlier_today on origin_earlier_today.shipment_id = shipments.shipment_id
left join outcomes on outcomes.shipment_id = shipments.shipment_id
