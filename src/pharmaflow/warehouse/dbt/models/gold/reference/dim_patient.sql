{#
  gold.dim_patient: one row per pseudonymous patient (patient_key = keyed HMAC of the MRN, made
  by ingest). Only Safe-Harbor-safe attributes exist: birth year (null when 90+), the 90+ flag,
  state and 3-digit ZIP.

  Business rules:
    * attributes are the LATEST seen, by event time of the order that carried them (a patient
      who moved shows the new state); ties broken by ingest time, then event_id;
    * first_order_at / last_order_at / orders span all the patient's placed orders.
#}

with placed as (
    select
        patient_key,
        order_id,
        birth_year,
        age_90_plus,
        patient_state,
        patient_zip3,
        event_time,
        ingest_time,
        event_id
    from {{ ref('silver_pharmacy_order_placed') }}
    where patient_key is not null
),

latest_attributes as (
    select *
    from (
        select
            placed.*,
            row_number() over (
                partition by patient_key
                order by {{ pf_event_order('latest') }}
            ) as recency_rank
        from placed
    ) ranked
    where recency_rank = 1
),

order_stats as (
    select
        patient_key,
        min(event_time) as first_order_at,
        max(event_time) as last_order_at,
        count(distinct order_id) as orders
    from placed
    group by patient_key
)

select
    latest_attributes.patient_key,
    latest_attributes.birth_year,
    latest_attributes.age_90_plus,
    latest_attributes.patient_state as state,
    latest_attributes.patient_zip3 as zip3,
    order_stats.first_order_at,
    order_stats.last_order_at,
    order_stats.orders
from latest_attributes
inner join order_stats
    on order_stats.patient_key = latest_attributes.patient_key
