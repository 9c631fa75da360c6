{#
    One row per simulation run (simulation_run_id): the oracle, served and holdout pages valued by the truth.
    Optional: only synthetic warehouses that ran `streamrec simulate` have truth.simulation_oracle; otherwise empty.
#}
{%- set relation = streamrec.optional_source('truth', 'simulation_oracle') %}

with

{%- if relation is not none %}

source as (

    select * from {{ relation }}

),

renamed as (

    select
        cast(run_id as {{ dbt.type_string() }}) as simulation_run_id,
        cast(model_versions as {{ dbt.type_string() }}) as model_versions,
        cast(causal_users as {{ dbt.type_bigint() }}) as causal_user_count,
        cast(causal_requests as {{ dbt.type_bigint() }}) as causal_request_count,
        cast(page_size as double) as page_slot_count,
        cast(engaged_slots_per_page_oracle as double) as oracle_engaged_slots_per_page,
        cast(engaged_slots_per_page_personalized as double) as personalized_engaged_slots_per_page,
        cast(engaged_slots_per_page_holdout as double) as holdout_engaged_slots_per_page,
        cast(engagement_rate_oracle as double) as oracle_engagement_rate,
        cast(engagement_rate_personalized as double) as personalized_engagement_rate,
        cast(engagement_rate_holdout as double) as holdout_engagement_rate,
        cast(watch_seconds_oracle as double) as oracle_watch_seconds,
        cast(watch_seconds_personalized as double) as personalized_watch_seconds,
        cast(watch_seconds_holdout as double) as holdout_watch_seconds,
        cast(oracle_lift_engagement_rate as double) as oracle_lift_engagement_rate,
        cast(oracle_share_engagement as double) as oracle_lift_share_ratio
    from source

)

{%- else %}

    renamed as (

        select
            cast(null as {{ dbt.type_string() }}) as simulation_run_id,
            cast(null as {{ dbt.type_string() }}) as model_versions,
            cast(null as {{ dbt.type_bigint() }}) as causal_user_count,
            cast(null as {{ dbt.type_bigint() }}) as causal_request_count,
            cast(null as double) as page_slot_count,
            cast(null as double) as oracle_engaged_slots_per_page,
            cast(null as double) as personalized_engaged_slots_per_page,
            cast(null as double) as holdout_engaged_slots_per_page,
            cast(null as double) as oracle_engagement_rate,
            cast(null as double) as personalized_engagement_rate,
            cast(null as double) as holdout_engagement_rate,
            cast(null as double) as oracle_watch_seconds,
            cast(null as double) as personalized_watch_seconds,
            cast(null as double) as holdout_watch_seconds,
            cast(null as double) as oracle_lift_engagement_rate,
            cast(null as double) as oracle_lift_share_ratio
        where 1 = 0

    )

{%- endif %}

select * from renamed
