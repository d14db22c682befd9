{#
  gold.kpi_nps: patient satisfaction, one row overall (scope ALL, pharmacy_id null) and one per
  dispensing pharmacy (scope PHARMACY), from gold.fact_survey. A survey counts at the pharmacy
  of its order's placement; a survey whose order has not arrived counts only in ALL.

  Definitions:
    * responses: surveys with an NPS answer (0-10); promoters 9-10, passives 7-8, detractors
      0-6 (fact_survey.nps_category).
    * promoter_pct / detractor_pct = 100 * promoters (detractors) / responses.
    * nps = 100 * (promoters - detractors) / responses, from -100 to 100, decimal(6,2)
      (= promoter_pct - detractor_pct up to rounding).
    * avg_rating: mean 1-5 star rating over the surveys that gave one, decimal(4,2).
#}

with surveys as (
    select * from {{ ref('fact_survey') }}
),

survey_scopes as (
    {{ pf_kpi_scopes('surveys', 'PHARMACY', 'pharmacy_id') }}
),

kpis as (
    select
        scope,
        scope_id,
        count(*) as surveys,
        {{ pf_count_if('nps_category is not null') }} as responses,
        {{ pf_count_if("nps_category = 'PROMOTER'") }} as promoters,
        {{ pf_count_if("nps_category = 'PASSIVE'") }} as passives,
        {{ pf_count_if("nps_category = 'DETRACTOR'") }} as detractors,
        {{ pf_exact_avg('rating', 'decimal(4,2)') }} as avg_rating
    from survey_scopes
    group by scope, scope_id
),

scopes as (
    {{ pf_kpi_scope_rows('kpis') }}
)

select
    scopes.scope,
    case when scopes.scope = 'PHARMACY' then scopes.scope_id end as pharmacy_id,
    coalesce(kpis.surveys, 0) as surveys,
    coalesce(kpis.responses, 0) as responses,
    coalesce(kpis.promoters, 0) as promoters,
    coalesce(kpis.passives, 0) as passives,
    coalesce(kpis.detractors, 0) as detractors,
    {{ pf_safe_ratio('100 * kpis.promoters', 'kpis.responses', 'decimal(6,2)') }} as promoter_pct,
    {{ pf_safe_ratio('100 * kpis.detractors', 'kpis.responses', 'decimal(6,2)') }} as detractor_pct,
    {{ pf_safe_ratio('100 * (kpis.promoters - kpis.detractors)', 'kpis.responses', 'decimal(6,2)') }}
        as nps,
    kpis.avg_rating
from scopes
left join kpis
    on kpis.scope = scopes.scope and kpis.scope_id = scopes.scope_id
