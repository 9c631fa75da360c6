{#
    Effect estimates per serving version, one row per (model_version, estimate_name), each a
    difference in means treated - control with a Welch normal 95% interval
    effect +- 1.96 * sqrt(var_t / n_t + var_c / n_c):

    - ate_engagement_rate (causal): per-user engagement rate (engaged slots / slots the user was
      served under the policy) of users on the personalised policy minus users in the randomised
      holdout (assigned by a hash of the user id, so the arms are exchangeable).
    - ate_watch_seconds (causal): the same randomised arms, outcome = the user's total watch seconds
      over all their events, organic ones (no request_id) included.
    - naive_watch_seconds (not causal): users who engaged with at least one recommendation minus users
      who did not, same outcome: selection (engaged users watch more anyway) inflates it.
    - naive_ctr_improvement (not causal): click-through rate of personalised slots minus slots of the
      non-personalised policies (holdout and cold start), impression level: cold-start users are not a
      random sample and slots of one user are not independent, so both the estimate and its
      interval are naive.
#}
with

impressions as (

    select * from {{ ref('online_impression_outcomes') }}

),

events as (

    select * from {{ ref('stg_ops__events') }}

),

user_arms as (

    select
        model_version,
        user_id,
        policy,
        count(*) as slot_count,
        sum(is_engaged) as engaged_slot_count
    from impressions
    where policy in ('personalized', 'holdout')
    group by model_version, user_id, policy

),

user_watch_time as (

    select
        user_id,
        sum(coalesce(watch_seconds, 0.0)) as watch_seconds
    from events
    group by user_id

),

user_engagement as (

    select
        model_version,
        user_id,
        max(case when engaged_slot_count > 0 then 1 else 0 end) as engaged_with_recommendations
    from user_arms
    group by model_version, user_id

),

-- every estimate as units (arm, outcome) so one aggregation serves them all
units as (

    select
        model_version,
        'ate_engagement_rate' as estimate_name,
        case when policy = 'personalized' then 'treated' else 'control' end as arm,
        cast(engaged_slot_count as double) / slot_count as outcome
    from user_arms

    union all

    select
        user_arms.model_version,
        'ate_watch_seconds' as estimate_name,
        case when user_arms.policy = 'personalized' then 'treated' else 'control' end as arm,
        coalesce(user_watch_time.watch_seconds, 0.0) as outcome
    from user_arms
    left join user_watch_time on user_arms.user_id = user_watch_time.user_id

    union all

    select
        user_engagement.model_version,
        'naive_watch_seconds' as estimate_name,
        case when user_engagement.engaged_with_recommendations = 1 then 'treated' else 'control' end as arm,
        coalesce(user_watch_time.watch_seconds, 0.0) as outcome
    from user_engagement
    left join user_watch_time on user_engagement.user_id = user_watch_time.user_id

    union all

    select
        model_version,
        'naive_ctr_improvement' as estimate_name,
        case when policy = 'personalized' then 'treated' else 'control' end as arm,
        cast(is_clicked as double) as outcome
    from impressions
    where policy in ('personalized', 'holdout', 'cold_start')

),

arm_moments as (

    select
        model_version,
        estimate_name,
        arm,
        count(*) as unit_count,
        avg(outcome) as outcome_mean,
        var_samp(outcome) as outcome_variance
    from units
    group by model_version, estimate_name, arm

),

estimate_names as (

    select
        'ate_engagement_rate' as estimate_name,
        true as is_causal,
        'engagement rate per user' as outcome_name,
        'personalized' as treated_label,
        'holdout' as control_label
    union all
    select
        'ate_watch_seconds' as estimate_name,
        true as is_causal,
        'watch seconds per user (all events)' as outcome_name,
        'personalized' as treated_label,
        'holdout' as control_label
    union all
    select
        'naive_watch_seconds' as estimate_name,
        false as is_causal,
        'watch seconds per user (all events)' as outcome_name,
        'engaged with recommendations' as treated_label,
        'did not engage' as control_label
    union all
    select
        'naive_ctr_improvement' as estimate_name,
        false as is_causal,
        'click-through per slot' as outcome_name,
        'personalized' as treated_label,
        'holdout and cold_start' as control_label

),

versions as (

    select distinct model_version from impressions

),

paired as (

    select
        versions.model_version,
        estimate_names.estimate_name,
        estimate_names.is_causal,
        estimate_names.outcome_name,
        estimate_names.treated_label,
        estimate_names.control_label,
        treated.outcome_mean as treated_mean,
        control.outcome_mean as control_mean,
        coalesce(treated.unit_count, 0) as treated_count,
        coalesce(control.unit_count, 0) as control_count,
        treated.outcome_mean - control.outcome_mean as effect,
        {{ streamrec.welch_standard_error(
            'treated.outcome_variance', 'treated.unit_count', 'control.outcome_variance', 'control.unit_count'
        ) }} as standard_error
    from versions
    cross join estimate_names
    left join arm_moments as treated
        on versions.model_version = treated.model_version
            and estimate_names.estimate_name = treated.estimate_name
            and treated.arm = 'treated'
    left join arm_moments as control
        on versions.model_version = control.model_version
            and estimate_names.estimate_name = control.estimate_name
            and control.arm = 'control'

),

final as (

    select
        {{ dbt.concat(["model_version", "'|'", "estimate_name"]) }} as causal_effect_id,
        model_version,
        estimate_name,
        is_causal,
        outcome_name,
        treated_label,
        control_label,
        treated_count,
        control_count,
        case when treated_count < control_count then treated_count else control_count end as sample_size,
        treated_mean,
        control_mean,
        effect,
        standard_error,
        effect - {{ streamrec.z_95() }} * standard_error as ci_low,
        effect + {{ streamrec.z_95() }} * standard_error as ci_high
    from paired

)

select * from final
