{#
  The ML score tables in gold (docs/ml.md). `pharmaflow score` writes them (the champion model's
  batch scores, each row stamped with the model version), not dbt: a model scores after a build,
  from the snapshot the build published. dbt creates them empty if they do not exist yet
  (on-run-start), so that gold.fact_survey can always join the sentiment scores and readers see
  an empty table, not a missing one, before the first scoring. Their columns are documented as
  the `ml_scores` source (models/gold/ml/ml_scores.yml).
#}

{% macro pf_ml_score_tables() -%}
    {#- scores are 8-byte floats: a 4-byte float rounds 0.5541 to 0.554099977 on the way out #}
    {%- set s, f, t = dbt.type_string(), pf_type_double(), dbt.type_timestamp() -%}
    {%- set stamp = [('model_name', s), ('model_version', s), ('scored_at', t)] -%}
    {{ return({
        'ml_shipment_delay_scores': [
            ('shipment_id', s), ('created_at', t), ('carrier_id', s), ('service_level', s),
            ('delay_probability', f), ('predicted_late', dbt.type_boolean())] + stamp,
        'ml_demand_forecast': [
            ('origin_date', 'date'), ('target_date', 'date'), ('horizon_days', dbt.type_int()),
            ('pharmacy_id', s), ('ndc', s), ('forecast_units', f)] + stamp,
        'ml_price_elasticity': [
            ('ndc', s), ('elasticity', f), ('ci_low', f), ('ci_high', f), ('method', s)] + stamp,
        'ml_survey_sentiment': [
            ('survey_id', s), ('sentiment_label', s), ('sentiment_score', f)] + stamp,
    }) }}
{%- endmacro %}

{% macro pf_create_ml_score_tables() -%}
    {%- if execute -%}
        {%- set schema = pf_schema_name('gold') -%}
        {%- set qualified = adapter.quote(target.database) ~ '.' ~ schema
            if target.type == 'duckdb' else schema -%}
        {%- do run_query('create schema if not exists ' ~ qualified) -%}
        {%- for table, columns in pf_ml_score_tables().items() -%}
            {%- set ddl -%}
                create table if not exists {{ qualified }}.{{ table }} (
                    {%- for name, type in columns %}
                    {{ name }} {{ type }}{{ "," if not loop.last }}
                    {%- endfor %}
                )
            {%- endset -%}
            {%- do run_query(ddl) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1 as noop
{%- endmacro %}
