{#
    One row per simulation run (simulation_run_id): the oracle, served and holdout pages valued by the truth.
    Optional: only synthetic warehouses that ran `streamrec simulate` have truth.simulation_oracle; otherwise empty.
#}
{%- set relation = streamrec.optional_source('truth', 'simulation_oracle') %}

{%- set columns = [
    ('run_id', dbt.type_string(), 'simulation_run_id'),
    ('model_versions', dbt.type_string(), 'model_versions'),
    ('causal_users', dbt.type_bigint(), 'causal_user_count'),
    ('causal_requests', dbt.type_bigint(), 'causal_request_count'),
    ('page_size', 'double', 'page_slot_count'),
    ('engaged_slots_per_page_oracle', 'double', 'oracle_engaged_slots_per_page'),
    ('engaged_slots_per_page_personalized', 'double', 'personalized_engaged_slots_per_page'),
    ('engaged_slots_per_page_holdout', 'double', 'holdout_engaged_slots_per_page'),
    ('engagement_rate_oracle', 'double', 'oracle_engagement_rate'),
    ('engagement_rate_personalized', 'double', 'personalized_engagement_rate'),
    ('engagement_rate_holdout', 'double', 'holdout_engagement_rate'),
    ('watch_seconds_oracle', 'double', 'oracle_watch_seconds'),
    ('watch_seconds_personalized', 'double', 'personalized_watch_seconds'),
    ('watch_seconds_holdout', 'double', 'holdout_watch_seconds'),
    ('oracle_lift_engagement_rate', 'double', 'oracle_lift_engagement_rate'),
    ('oracle_share_engagement', 'double', 'oracle_lift_share_ratio'),
] %}

with

renamed as (

    {{ streamrec.optional_staging(relation, columns) }}

)

select * from renamed
