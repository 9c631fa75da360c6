{#
    One row per `streamrec simulate` run that valued the oracle: the best page the ground truth allows
    (top k servable items by true relevance) next to the served personalised and the popularity
    (holdout) pages, over the run's causal users, and the share of the oracle's lift over popularity
    that personalisation captured: (personalised - holdout) / (oracle - holdout) of the engagement rate.
    The simulator computes these from the truth; they exist only on synthetic data after a simulation,
    so the staging models are empty otherwise, and so is this model.
#}

with

oracles as (

    select * from {{ ref('stg_truth__simulation_oracles') }}

),

runs as (

    select * from {{ ref('stg_truth__simulation_runs') }}

),

joined as (

    select
        oracles.simulation_run_id,
        runs.finished_at,
        oracles.model_versions,
        oracles.causal_user_count,
        oracles.causal_request_count,
        oracles.page_slot_count,
        oracles.oracle_engaged_slots_per_page,
        oracles.personalized_engaged_slots_per_page,
        oracles.holdout_engaged_slots_per_page,
        oracles.oracle_engagement_rate,
        oracles.personalized_engagement_rate,
        oracles.holdout_engagement_rate,
        oracles.oracle_watch_seconds,
        oracles.personalized_watch_seconds,
        oracles.holdout_watch_seconds,
        runs.true_ate_engagement_rate,
        runs.true_ate_watch_seconds,
        oracles.oracle_lift_engagement_rate,
        oracles.oracle_lift_share_ratio
    from oracles
    inner join runs on oracles.simulation_run_id = runs.simulation_run_id

),

final as (

    select
        *,
        row_number() over (order by finished_at desc, simulation_run_id desc) = 1 as is_latest_run
    from joined

)

select * from final
