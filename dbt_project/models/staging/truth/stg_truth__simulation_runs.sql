{#
    One row per simulation run (simulation_run_id) with its true ATEs of personalisation over the holdout.
    Optional: only synthetic warehouses that ran `streamrec simulate` have truth.simulation_runs; otherwise empty.
#}
{%- set relation = streamrec.optional_source('truth', 'simulation_runs') %}

with

{%- if relation is not none %}

source as (

    select * from {{ relation }}

),

renamed as (

    select
        cast(run_id as {{ dbt.type_string() }}) as simulation_run_id,
        cast(finished_at as {{ dbt.type_timestamp() }}) as finished_at,
        cast(true_ate_engagement_rate as double) as true_ate_engagement_rate,
        cast(true_ate_watch_seconds as double) as true_ate_watch_seconds
    from source

)

{%- else %}

    renamed as (

        select
            cast(null as {{ dbt.type_string() }}) as simulation_run_id,
            cast(null as {{ dbt.type_timestamp() }}) as finished_at,
            cast(null as double) as true_ate_engagement_rate,
            cast(null as double) as true_ate_watch_seconds
        where 1 = 0

    )

{%- endif %}

select * from renamed
