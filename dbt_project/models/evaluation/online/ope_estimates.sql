{#
    Off-policy estimates of each candidate policy's value (expected reward per slot), one row per
    (dataset, target_policy, estimator), from ope_logged_feedback and raw.ope_target_policy.

    raw.ope_target_policy(dataset, target_policy, request_id, position, item_id, target_probability)
    gives, for every logged slot, the candidate's distribution over items at that slot (absent
    items have probability 0). For round i with logged item a_i, logging propensity p_i and reward r_i,
    w_i = pi_e(a_i) / p_i and, with n rounds:
      ips        = mean(w_i r_i);                          se = sd(w_i r_i) / sqrt(n)
      snips      = sum(w_i r_i) / sum(w_i);                 se = sqrt(sum w_i^2 (r_i - snips)^2) / sum(w_i)  (delta method)
      dr         = mean(dm_i + w_i (r_i - q(a_i)));         se = sd(dr_i) / sqrt(n)
      dm         = mean(dm_i), dm_i = sum_a pi_e(a) q(a);   se = sd(dm_i) / sqrt(n) (ignores the model's own error)
      logged_mean = mean(r_i): the logging policy's value, what a naive reading of the log gives.
    95% intervals are estimate +- 1.96 se. The reward model q is cross-fitted: rounds are split into
    two folds by request (alternating in request_id order) and q for a fold is fitted on the other:
    q(item, position) = (sum of rewards + m) / (count + 1), m = the other fold's mean reward at the position
    (an item never logged at the position gets m). Empty when raw.ope_target_policy does not exist.
#}

with

logged as (

    select * from {{ ref('ope_logged_feedback') }}

),

targets as (

    select * from {{ ref('stg_ope__target_policies') }}

),

rounds as (

    select
        logged.*,
        mod(dense_rank() over (partition by logged.dataset order by logged.request_id), 2) as fold
    from logged

),

fold_item_sums as (

    select
        dataset,
        fold,
        item_id,
        slot_position,
        count(*) as round_count,
        sum(reward) as reward_sum
    from rounds
    group by dataset, fold, item_id, slot_position

),

fold_position_means as (

    select
        dataset,
        fold,
        slot_position,
        avg(reward) as mean_reward
    from rounds
    group by dataset, fold, slot_position

),

-- a fold's reward model comes from the other fold (cross-fitting); prior = that fold's position mean
reward_model as (

    select
        fold_position_means.dataset,
        fold_position_means.slot_position,
        fold_item_sums.item_id,
        fold_position_means.mean_reward as position_mean,
        1 - fold_position_means.fold as predicted_fold,
        (fold_item_sums.reward_sum + fold_position_means.mean_reward) / (fold_item_sums.round_count + 1.0)
            as item_mean
    from fold_position_means
    left join fold_item_sums
        on fold_position_means.dataset = fold_item_sums.dataset
            and fold_position_means.fold = fold_item_sums.fold
            and fold_position_means.slot_position = fold_item_sums.slot_position

),

position_priors as (

    select distinct
        dataset,
        predicted_fold,
        slot_position,
        position_mean
    from reward_model

),

policies as (

    select distinct
        dataset,
        target_policy
    from targets

),

-- q(a, position) for every item the candidate may show at a logged slot
target_predictions as (

    select
        targets.dataset,
        targets.target_policy,
        targets.request_id,
        targets.slot_position,
        targets.item_id,
        targets.target_probability,
        coalesce(reward_model.item_mean, position_priors.position_mean, 0.0) as predicted_reward
    from targets
    inner join rounds
        on targets.dataset = rounds.dataset
            and targets.request_id = rounds.request_id
            and targets.slot_position = rounds.slot_position
    left join position_priors
        on targets.dataset = position_priors.dataset
            and rounds.fold = position_priors.predicted_fold
            and targets.slot_position = position_priors.slot_position
    left join reward_model
        on targets.dataset = reward_model.dataset
            and rounds.fold = reward_model.predicted_fold
            and targets.slot_position = reward_model.slot_position
            and targets.item_id = reward_model.item_id

),

direct_terms as (

    select
        dataset,
        target_policy,
        request_id,
        slot_position,
        sum(target_probability * predicted_reward) as direct_value
    from target_predictions
    group by dataset, target_policy, request_id, slot_position

),

round_terms as (

    select
        rounds.dataset,
        policies.target_policy,
        rounds.reward,
        coalesce(logged_target.target_probability, 0.0) / rounds.propensity as importance_weight,
        coalesce(direct_terms.direct_value, 0.0) as direct_value,
        coalesce(reward_model.item_mean, position_priors.position_mean, 0.0) as logged_prediction
    from rounds
    inner join policies on rounds.dataset = policies.dataset
    left join targets as logged_target
        on rounds.dataset = logged_target.dataset
            and policies.target_policy = logged_target.target_policy
            and rounds.request_id = logged_target.request_id
            and rounds.slot_position = logged_target.slot_position
            and rounds.item_id = logged_target.item_id
    left join direct_terms
        on rounds.dataset = direct_terms.dataset
            and policies.target_policy = direct_terms.target_policy
            and rounds.request_id = direct_terms.request_id
            and rounds.slot_position = direct_terms.slot_position
    left join position_priors
        on rounds.dataset = position_priors.dataset
            and rounds.fold = position_priors.predicted_fold
            and rounds.slot_position = position_priors.slot_position
    left join reward_model
        on rounds.dataset = reward_model.dataset
            and rounds.fold = reward_model.predicted_fold
            and rounds.slot_position = reward_model.slot_position
            and rounds.item_id = reward_model.item_id

),

per_round as (

    select
        dataset,
        target_policy,
        reward,
        importance_weight,
        direct_value as dm_term,
        importance_weight * reward as ips_term,
        direct_value + importance_weight * (reward - logged_prediction) as dr_term
    from round_terms

),

moments as (

    select
        dataset,
        target_policy,
        count(*) as round_count,
        avg(ips_term) as ips_mean,
        stddev_samp(ips_term) as ips_sd,
        avg(dr_term) as dr_mean,
        stddev_samp(dr_term) as dr_sd,
        avg(dm_term) as dm_mean,
        stddev_samp(dm_term) as dm_sd,
        avg(reward) as reward_mean,
        stddev_samp(reward) as reward_sd,
        sum(importance_weight) as weight_sum,
        sum(importance_weight * importance_weight) as squared_weight_sum,
        sum(importance_weight * reward) as weighted_reward_sum,
        sum(importance_weight * importance_weight * reward) as squared_weight_reward_sum,
        sum(importance_weight * importance_weight * reward * reward) as squared_weight_squared_reward_sum,
        max(importance_weight) as max_weight
    from per_round
    group by dataset, target_policy

),

snips as (

    select
        *,
        {{ streamrec.safe_divide('weighted_reward_sum', 'weight_sum') }} as snips_value
    from moments

),

-- sum w^2 (r - V)^2 = sum w^2 r^2 - 2 V sum w^2 r + V^2 sum w^2
estimates as (

    select
        dataset,
        target_policy,
        'ips' as estimator,
        ips_mean as estimate,
        ips_sd / sqrt(round_count) as standard_error,
        round_count,
        weight_sum,
        squared_weight_sum,
        max_weight
    from snips
    union all
    select
        dataset,
        target_policy,
        'snips' as estimator,
        snips_value as estimate,
        case when weight_sum > 0 then sqrt(greatest(
                    squared_weight_squared_reward_sum
                    - 2.0 * snips_value * squared_weight_reward_sum
                    + snips_value * snips_value * squared_weight_sum,
                    0.0
                )) / weight_sum
        end as standard_error,
        round_count,
        weight_sum,
        squared_weight_sum,
        max_weight
    from snips
    union all
    select
        dataset,
        target_policy,
        'dr' as estimator,
        dr_mean as estimate,
        dr_sd / sqrt(round_count) as standard_error,
        round_count,
        weight_sum,
        squared_weight_sum,
        max_weight
    from snips
    union all
    select
        dataset,
        target_policy,
        'dm' as estimator,
        dm_mean as estimate,
        dm_sd / sqrt(round_count) as standard_error,
        round_count,
        weight_sum,
        squared_weight_sum,
        max_weight
    from snips
    union all
    select
        dataset,
        target_policy,
        'logged_mean' as estimator,
        reward_mean as estimate,
        reward_sd / sqrt(round_count) as standard_error,
        round_count,
        weight_sum,
        squared_weight_sum,
        max_weight
    from snips

),

final as (

    select
        {{ dbt.concat(["dataset", "'|'", "target_policy", "'|'", "estimator"]) }} as ope_estimate_id,
        dataset,
        target_policy,
        estimator,
        estimate,
        standard_error,
        estimate - {{ streamrec.z_95() }} * standard_error as ci_low,
        estimate + {{ streamrec.z_95() }} * standard_error as ci_high,
        round_count,
        {{ streamrec.safe_divide('weight_sum * weight_sum', 'squared_weight_sum') }} as effective_sample_size,
        max_weight
    from estimates

)

select * from final
