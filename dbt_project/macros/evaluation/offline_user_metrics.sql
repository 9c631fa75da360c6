{# The per-user offline metrics of every model version and policy, as CTEs ending in `user_metrics`
   (model_version, policy, user_id, has_retrieval, has_ranking, recall_at_k, hit_at_k, ndcg_at_k): shared by
   offline_metrics (means and their intervals) and offline_lifts (model vs popularity, paired by user).
   Every held-out user of a version counts under every policy of that version (a missing list scores 0). #}
{% macro offline_user_metric_ctes(retrieval_k=500, ranking_k=10) %}

recommendations as (

    select * from {{ ref('stg_ops__offline_recommendations') }}

),

holdout as (

    select * from {{ ref('stg_ops__offline_holdouts') }}

),

-- positions 1..n within each list whatever base the writer's ranks use
numbered as (

    select
        model_version,
        policy,
        stage,
        user_id,
        item_id,
        row_number() over (
            partition by model_version, policy, stage, user_id
            order by recommendation_rank, item_id
        ) as list_position
    from recommendations

),

-- an item listed twice counts once, at its best position
positioned as (

    select
        model_version,
        policy,
        stage,
        user_id,
        item_id,
        min(list_position) as list_position
    from numbered
    group by model_version, policy, stage, user_id, item_id

),

holdout_users as (

    select
        model_version,
        user_id,
        count(*) as positive_count
    from holdout
    group by model_version, user_id

),

policy_stages as (

    select
        model_version,
        policy,
        max(case when stage = 'retrieval' then 1 else 0 end) as has_retrieval,
        max(case when stage = 'ranking' then 1 else 0 end) as has_ranking
    from recommendations
    group by model_version, policy

),

evaluated_users as (

    select
        policy_stages.model_version,
        policy_stages.policy,
        policy_stages.has_retrieval,
        policy_stages.has_ranking,
        holdout_users.user_id,
        holdout_users.positive_count
    from policy_stages
    inner join holdout_users
        on holdout_users.model_version = policy_stages.model_version

),

relevant_positions as (

    select
        positioned.model_version,
        positioned.policy,
        positioned.stage,
        positioned.user_id,
        positioned.list_position
    from positioned
    inner join holdout
        on holdout.model_version = positioned.model_version
        and holdout.user_id = positioned.user_id
        and holdout.item_id = positioned.item_id

),

retrieval_hits as (

    select
        model_version,
        policy,
        user_id,
        count(*) as hit_count
    from relevant_positions
    where stage = 'retrieval' and list_position <= {{ retrieval_k }}
    group by model_version, policy, user_id

),

-- gain of a hit at position p is 1 / log2(p + 1)
ranking_gains as (

    select
        model_version,
        policy,
        user_id,
        count(*) as hit_count,
        sum(ln(2) / ln(list_position + 1)) as dcg
    from relevant_positions
    where stage = 'ranking' and list_position <= {{ ranking_k }}
    group by model_version, policy, user_id

),

-- the best possible list puts min(k, #positives) positives on top
ideal_positions as (

    select
        model_version,
        user_id,
        row_number() over (partition by model_version, user_id order by item_id) as ideal_position
    from holdout

),

ideal_gains as (

    select
        model_version,
        user_id,
        sum(ln(2) / ln(ideal_position + 1)) as ideal_dcg
    from ideal_positions
    where ideal_position <= {{ ranking_k }}
    group by model_version, user_id

),

user_metrics as (

    select
        evaluated_users.model_version,
        evaluated_users.policy,
        evaluated_users.user_id,
        evaluated_users.has_retrieval,
        evaluated_users.has_ranking,
        cast(coalesce(retrieval_hits.hit_count, 0) as double)
            / evaluated_users.positive_count as recall_at_k,
        cast(case when ranking_gains.hit_count > 0 then 1 else 0 end as double) as hit_at_k,
        coalesce(ranking_gains.dcg, 0) / ideal_gains.ideal_dcg as ndcg_at_k
    from evaluated_users
    inner join ideal_gains
        on ideal_gains.model_version = evaluated_users.model_version
        and ideal_gains.user_id = evaluated_users.user_id
    left join retrieval_hits
        on retrieval_hits.model_version = evaluated_users.model_version
        and retrieval_hits.policy = evaluated_users.policy
        and retrieval_hits.user_id = evaluated_users.user_id
    left join ranking_gains
        on ranking_gains.model_version = evaluated_users.model_version
        and ranking_gains.policy = evaluated_users.policy
        and ranking_gains.user_id = evaluated_users.user_id

)

{% endmacro %}
