{#
    One row per simulation run (simulation_run_id) with its true ATEs of personalisation over the holdout.
    Optional: only synthetic warehouses that ran `streamrec simulate` have truth.simulation_runs; otherwise empty.
#}
{%- set relation = streamrec.optional_source('truth', 'simulation_runs') %}

{%- set columns = [
    ('run_id', dbt.type_string(), 'simulation_run_id'),
    ('finished_at', dbt.type_timestamp(), 'finished_at'),
    ('true_ate_engagement_rate', 'double', 'true_ate_engagement_rate'),
    ('true_ate_watch_seconds', 'double', 'true_ate_watch_seconds'),
] %}

with

renamed as (

    {{ streamrec.optional_staging(relation, columns) }}

)

select * from renamed
