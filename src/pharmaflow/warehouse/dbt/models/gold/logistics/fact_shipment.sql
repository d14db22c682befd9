{#
  gold.fact_shipment: one row per shipment (shipment_id), every leg: plant -> DC, DC -> pharmacy,
  pharmacy -> patient (destination_facility_id null).

  Business rules ("first"/"latest" by EVENT time; ties by ingest time, then event_id):
    * The shipments are every shipment_id seen in any logistics event: a shipment whose created
      event has not arrived is kept with has_created_event = false and nulls for what only the
      creation carries.
    * Shipment attributes (origin, destination, order, carrier, service level, promise, cold
      chain, lots): the LATEST created event (an amended shipment replaces the earlier one, as
      in gold.lot_genealogy); created_at: the FIRST created event. n_lots = distinct lot numbers
      in the lot list.
    * picked_up_at: the first PICKED_UP scan; delivered_at: the FIRST delivered event (when
      the goods first arrived, as in fact_order_lifecycle and lot_genealogy),
      last_delivered_at: the latest.
    * Set-aside (macros/gold_rules.sql, listed in gold._rejected): a delivered event
      timestamped before the shipment started (its first PICKED_UP scan, else its first created
      event) is not used for delivered_at, transit_hours, on_time or current_status; so
      transit_hours is never negative. A pick-up scan arriving late re-judges the shipment.
    * transit_hours = delivered_at - (picked_up_at, else created_at), in hours; on_time =
      delivered_at <= promised_delivery_time (null until delivered or without a promise).
    * Exceptions: every exception event counts, in total and per code.
    * Temperature (data-logger readings): a reading is out of spec when celsius < spec_min or
      celsius > spec_max. excursion_minutes: per logger, readings in event-time order, each
      out-of-spec reading counts the time until that logger's next reading (the temperature is
      taken to hold until the next reading; a last reading out of spec counts 0); the
      shipment's value is the largest over its loggers (a shipment carries one logger, so the
      time its load was out of spec). Null without any reading; 0 when all readings were in spec.
      monitored_minutes: per logger, from its first to its last reading (the intervals between
      consecutive readings), summed over the loggers; time_in_spec_minutes: the part of those
      intervals that start with an in-spec reading; time_in_spec_pct = 100 *
      time_in_spec_minutes / monitored_minutes (null with fewer than two readings per logger):
      cold-chain compliance weighted by time, where temperature_out_of_spec counts readings.
    * current_status: the stage of the latest event: CREATED < PICKED_UP < IN_TRANSIT <
      AT_FACILITY < OUT_FOR_DELIVERY < LOST (a LOST exception) < DELIVERED; at equal event
      times the later stage wins. Other exceptions (DELAY, DAMAGED, TEMP_EXCURSION) do not change
      the status.
    * origin/destination facility version (facility_sk, region) and carrier version: the
      reference versions valid at created_at (SCD2, macros/history.sql).

  Incremental (macros/incremental.sql): a shipment touched by a newly ingested event is rebuilt
  from all its events; last_ingest_time is the newest ingest_time behind the row.
#}

{#- BigQuery only (ignored elsewhere): day partitions of created_at, as queries and the
    incremental delete+insert go by recent shipments; clustered by the usual filters. -#}
{{ config(
    materialized='incremental',
    unique_key='shipment_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    partition_by=pf_bq_partition('created_at'),
    cluster_by=pf_bq_cluster(['carrier_id', 'origin_facility_id', 'current_status']),
) }}

{%- set shipment_events = [
    'silver_logistics_shipment_created',
    'silver_logistics_shipment_scanned',
    'silver_logistics_shipment_delivered',
    'silver_logistics_shipment_exception',
    'silver_logistics_temperature_reading',
] %}
{%- set changed_sources = [] %}
{%- for model in shipment_events %}
    {%- do changed_sources.append(pf_new_keys(model, 'shipment_id', 'shipment_id')) %}
{%- endfor %}

with changed_shipments as (
    {{ pf_changed_keys('shipment_id', changed_sources) }}
),

created_events as (
    select * from {{ ref('silver_logistics_shipment_created') }}
    where {{ pf_key_changed('shipment_id', 'changed_shipments') }}
),

scan_events as (
    select * from {{ ref('silver_logistics_shipment_scanned') }}
    where {{ pf_key_changed('shipment_id', 'changed_shipments') }}
),

delivered_events as (
    select * from {{ ref('silver_logistics_shipment_delivered') }}
    where {{ pf_key_changed('shipment_id', 'changed_shipments') }}
),

-- set-aside: deliveries timestamped before the shipment started (gold._rejected)
rejected_deliveries as (
    {{ pf_reject_delivery_before_pickup('delivered_events', 'created_events', 'scan_events') }}
),

used_deliveries as (
    {{ pf_not_rejected('delivered_events', 'rejected_deliveries') }}
),

exception_events as (
    select * from {{ ref('silver_logistics_shipment_exception') }}
    where {{ pf_key_changed('shipment_id', 'changed_shipments') }}
),

temperature_readings as (
    select * from {{ ref('silver_logistics_temperature_reading') }}
    where {{ pf_key_changed('shipment_id', 'changed_shipments') }}
),

-- every shipment seen in any logistics event
shipments as (
    select shipment_id from created_events
    union distinct
    select shipment_id from scan_events
    union distinct
    select shipment_id from delivered_events
    union distinct
    select shipment_id from exception_events
    union distinct
    select shipment_id from temperature_readings
),

latest_creation as (
    {{ pf_pick_one('created_events', 'shipment_id', pf_event_order('latest')) }}
),

creation_summary as (
    select
        shipment_id,
        min(event_time) as created_at,
        max(ingest_time) as last_ingest_time
    from created_events
    group by shipment_id
),

-- the latest creation, timed at the first one: what the version joins below read
created as (
    select
        latest_creation.*,
        creation_summary.created_at
    from latest_creation
    inner join creation_summary
        on creation_summary.shipment_id = latest_creation.shipment_id
),

shipment_lots as (
    select
        created.shipment_id,
        count(distinct lot_number) as n_lots
    from created
    {{ pf_cross_join_unnest('created.lot_numbers', 'lot_number') }}
    group by created.shipment_id
),

scan_summary as (
    select
        shipment_id,
        min(case when status = 'PICKED_UP' then event_time end) as picked_up_at,
        count(*) as scans,
        max(ingest_time) as last_ingest_time
    from scan_events
    group by shipment_id
),

delivery_summary as (
    select
        shipment_id,
        min(event_time) as delivered_at,
        max(event_time) as last_delivered_at
    from used_deliveries
    group by shipment_id
),

-- every delivered event, set-aside ones included: they were read to build the row
delivery_watermark as (
    select shipment_id, max(ingest_time) as last_ingest_time
    from delivered_events
    group by shipment_id
),

exception_summary as (
    select
        shipment_id,
        count(*) as exceptions,
        {{ pf_count_if("exception_code = 'DELAY'") }} as exceptions_delay,
        {{ pf_count_if("exception_code = 'DAMAGED'") }} as exceptions_damaged,
        {{ pf_count_if("exception_code = 'LOST'") }} as exceptions_lost,
        {{ pf_count_if("exception_code = 'TEMP_EXCURSION'") }} as exceptions_temp_excursion,
        max(ingest_time) as last_ingest_time
    from exception_events
    group by shipment_id
),

-- each reading with the time until the same logger's next reading
reading_intervals as (
    select
        shipment_id,
        logger_id,
        celsius,
        ingest_time,
        celsius < spec_min or celsius > spec_max as is_out_of_spec,
        {{ pf_epoch_us('event_time') }} as reading_us,
        lead({{ pf_epoch_us('event_time') }}) over (
            partition by shipment_id, logger_id
            order by {{ pf_event_order('first') }}
        ) as next_reading_us
    from temperature_readings
),

logger_summary as (
    select
        shipment_id,
        logger_id,
        coalesce(sum(case when is_out_of_spec then next_reading_us - reading_us end), 0)
            as excursion_us,
        sum(next_reading_us - reading_us) as monitored_us,
        sum(case when not is_out_of_spec then next_reading_us - reading_us end) as in_spec_us
    from reading_intervals
    group by shipment_id, logger_id
),

temperature_summary as (
    select
        readings.shipment_id,
        readings.readings,
        readings.out_of_spec_readings,
        readings.min_celsius,
        readings.max_celsius,
        readings.last_ingest_time,
        loggers.excursion_us,
        loggers.monitored_us,
        loggers.in_spec_us
    from (
        select
            shipment_id,
            count(*) as readings,
            {{ pf_count_if('is_out_of_spec') }} as out_of_spec_readings,
            min({{ pf_measurement('celsius') }}) as min_celsius,
            max({{ pf_measurement('celsius') }}) as max_celsius,
            max(ingest_time) as last_ingest_time
        from reading_intervals
        group by shipment_id
    ) readings
    inner join (
        select
            shipment_id,
            max(excursion_us) as excursion_us,
            sum(monitored_us) as monitored_us,
            case
                when sum(monitored_us) is not null then coalesce(sum(in_spec_us), 0)
            end as in_spec_us
        from logger_summary
        group by shipment_id
    ) loggers
        on loggers.shipment_id = readings.shipment_id
),

-- every status-bearing event as a stage, to find the stage reached last
status_events as (
    select shipment_id, event_time, ingest_time, event_id, 'CREATED' as stage, 1 as stage_rank
    from created_events
    union all
    select
        shipment_id,
        event_time,
        ingest_time,
        event_id,
        status as stage,
        case status
            when 'PICKED_UP' then 2
            when 'IN_TRANSIT' then 3
            when 'AT_FACILITY' then 4
            when 'OUT_FOR_DELIVERY' then 5
        end as stage_rank
    from scan_events
    union all
    select shipment_id, event_time, ingest_time, event_id, 'LOST' as stage, 6 as stage_rank
    from exception_events
    where exception_code = 'LOST'
    union all
    select shipment_id, event_time, ingest_time, event_id, 'DELIVERED' as stage, 7 as stage_rank
    from used_deliveries
),

current_stage as (
    {{ pf_pick_one('status_events', 'shipment_id',
                   pf_event_order('latest', tie='stage_rank desc')) }}
)

select
    shipments.shipment_id,
    created.shipment_id is not null as has_created_event,
    created.origin_facility_id,
    origin.facility_sk as origin_facility_sk,
    origin.facility_type as origin_facility_type,
    origin.region as origin_region,
    created.destination_facility_id,
    destination.facility_sk as destination_facility_sk,
    case
        when created.shipment_id is null then null
        when created.destination_facility_id is null then 'PATIENT'
        else destination.facility_type
    end as destination_type,
    destination.region as destination_region,
    created.order_id,
    created.carrier_id,
    carrier.carrier_sk,
    created.service_level,
    created.cold_chain,
    coalesce(shipment_lots.n_lots, 0) as n_lots,

    created.created_at,
    scan_summary.picked_up_at,
    delivery_summary.delivered_at,
    delivery_summary.last_delivered_at,
    created.promised_delivery_time,
    {{ pf_hours_between('coalesce(scan_summary.picked_up_at, created.created_at)',
                        'delivery_summary.delivered_at') }} as transit_hours,
    case
        when delivery_summary.delivered_at is null or created.promised_delivery_time is null
            then null
        else delivery_summary.delivered_at <= created.promised_delivery_time
    end as on_time,

    coalesce(scan_summary.scans, 0) as scans,
    coalesce(exception_summary.exceptions, 0) as exceptions,
    coalesce(exception_summary.exceptions_delay, 0) as exceptions_delay,
    coalesce(exception_summary.exceptions_damaged, 0) as exceptions_damaged,
    coalesce(exception_summary.exceptions_lost, 0) as exceptions_lost,
    coalesce(exception_summary.exceptions_temp_excursion, 0) as exceptions_temp_excursion,

    coalesce(temperature_summary.readings, 0) as temperature_readings,
    coalesce(temperature_summary.out_of_spec_readings, 0) as temperature_out_of_spec,
    temperature_summary.min_celsius,
    temperature_summary.max_celsius,
    {{ pf_us_to_minutes('temperature_summary.excursion_us') }} as excursion_minutes,
    {{ pf_us_to_minutes('temperature_summary.monitored_us') }} as monitored_minutes,
    {{ pf_us_to_minutes('temperature_summary.in_spec_us') }} as time_in_spec_minutes,
    {{ pf_us_ratio_pct('temperature_summary.in_spec_us', 'temperature_summary.monitored_us') }}
        as time_in_spec_pct,

    current_stage.stage as current_status,
    current_stage.event_time as status_changed_at,
    {{ pf_greatest([
        'creation_summary.last_ingest_time',
        'scan_summary.last_ingest_time',
        'delivery_watermark.last_ingest_time',
        'exception_summary.last_ingest_time',
        'temperature_summary.last_ingest_time',
    ]) }} as last_ingest_time
from shipments
left join created on created.shipment_id = shipments.shipment_id
left join creation_summary on creation_summary.shipment_id = shipments.shipment_id
left join shipment_lots on shipment_lots.shipment_id = shipments.shipment_id
left join scan_summary on scan_summary.shipment_id = shipments.shipment_id
left join delivery_summary on delivery_summary.shipment_id = shipments.shipment_id
left join delivery_watermark on delivery_watermark.shipment_id = shipments.shipment_id
left join exception_summary on exception_summary.shipment_id = shipments.shipment_id
left join temperature_summary on temperature_summary.shipment_id = shipments.shipment_id
left join current_stage on current_stage.shipment_id = shipments.shipment_id
{{ pf_join_version('dim_facility', 'origin', 'facility_id', 'created.origin_facility_id', 'created.created_at') }}
{{ pf_join_version('dim_facility', 'destination', 'facility_id', 'created.destination_facility_id', 'created.created_at') }}
{{ pf_join_version('dim_carrier', 'carrier', 'carrier_id', 'created.carrier_id', 'created.created_at') }}
