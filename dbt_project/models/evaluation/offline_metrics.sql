{#
    Offline quality of each model version's policies on its held-out users (binary relevance):
    Recall@500 of the retrieval lists, Hit@10 and NDCG@10 of the ranking lists, averaged per user.
    Every held-out user of a version counts under every policy of that version (a missing list
    scores 0); recommendations for users outside the holdout are ignored. Metrics are rounded to
    10 decimals so engines that sum in different orders (DuckDB, Spark) give identical tables.
#}
{% set retrieval_k = 500 %}
{% set ranking_k = 10 %}

with

{{ streamrec.offline_user_metric_ctes(retrieval_k, ranking_k) }},

final as (

    select
        {{ dbt.concat(["model_version", "'|'", "policy"]) }} as offline_metric_id,
        model_version,
        policy,
        -- a policy without lists for a stage has no metric for it (null), not a zero
        case when max(has_retrieval) = 1 then round(avg(recall_at_k), 10) end as recall_at_500_ratio,
        case when max(has_ranking) = 1 then round(avg(hit_at_k), 10) end as hit_at_10_ratio,
        case when max(has_ranking) = 1 then round(avg(ndcg_at_k), 10) end as ndcg_at_10_score,
        -- standard errors of the means over users (the scorecard's normal 95% intervals)
        case when max(has_retrieval) = 1 then round(stddev_samp(recall_at_k) / sqrt(count(*)), 10) end
            as recall_at_500_standard_error,
        case when max(has_ranking) = 1 then round(stddev_samp(ndcg_at_k) / sqrt(count(*)), 10) end
            as ndcg_at_10_standard_error,
        count(*) as user_count
    from user_metrics
    group by model_version, policy

)

select * from final
