{#
    One row per `streamrec simulate` run that valued the oracle: the best page the ground truth allows
    (top k servable items by true relevance) next to the served personalised and the popularity
    (holdout) pages, over the run's causal users, and the share of the oracle's lift over popularity
    that personalisation captured: (personalised - holdout) / (oracle - holdout) of the engagement rate.
    The simulator computes these from the truth (truth.simulation_oracle, truth.simulation_runs); they
    exist only on synthetic data after a simulation, so, like the optional OPE inputs
    (ope_logged_feedback), they are read only when the tables exist: otherwise the model is empty.
#}
{%- set oracle = streamrec.optional_source('truth', 'simulation_oracle') %}
{%- set runs = streamrec.optional_source('truth', 'simulation_runs') %}

{%- if oracle is not none and runs is not none %}

with

oracle as (

    select * from {{ oracle }}

),

runs as (

    select * from {{ runs }}

),

joined as (

    select
        oracle.run_id as simulation_run_id,
        cast(runs.finished_at as {{ dbt.type_timestamp() }}) as finished_at,
        oracle.model_versions,
        cast(oracle.causal_users as {{ dbt.type_bigint() }}) as causal_user_count,
        cast(oracle.causal_requests as {{ dbt.type_bigint() }}) as causal_request_count,
        cast(oracle.page_size as double) as page_slot_count,
        cast(oracle.engaged_slots_per_page_oracle as double) as oracle_engaged_slots_per_page,
        cast(oracle.engaged_slots_per_page_personalized as double) as personalized_engaged_slots_per_page,
        cast(oracle.engaged_slots_per_page_holdout as double) as holdout_engaged_slots_per_page,
        cast(oracle.engagement_rate_oracle as double) as oracle_engagement_rate,
        cast(oracle.engagement_rate_personalized as double) as personalized_engagement_rate,
        cast(oracle.engagement_rate_holdout as double) as holdout_engagement_rate,
        cast(oracle.watch_seconds_oracle as double) as oracle_watch_seconds,
        cast(oracle.watch_seconds_personalized as double) as personalized_watch_seconds,
        cast(oracle.watch_seconds_holdout as double) as holdout_watch_seconds,
        cast(runs.true_ate_engagement_rate as double) as true_ate_engagement_rate,
        cast(runs.true_ate_watch_seconds as double) as true_ate_watch_seconds,
        cast(oracle.oracle_lift_engagement_rate as double) as oracle_lift_engagement_rate,
        cast(oracle.oracle_share_engagement as double) as oracle_lift_share_ratio
    from oracle
    inner join runs on runs.run_id = oracle.run_id

),

final as (

    select
        *,
        row_number() over (order by finished_at desc, simulation_run_id desc) = 1 as is_latest_run
    from joined

)

select * from final

{%- else %}

select
    cast(null as {{ dbt.type_string() }}) as simulation_run_id,
    cast(null as {{ dbt.type_timestamp() }}) as finished_at,
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
    cast(null as double) as true_ate_engagement_rate,
    cast(null as double) as true_ate_watch_seconds,
    cast(null as double) as oracle_lift_engagement_rate,
    cast(null as double) as oracle_lift_share_ratio,
    cast(null as boolean) as is_latest_run
where false

{%- endif %}
