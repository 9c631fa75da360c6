{#
    The model's offline quality as a lift over the popularity baseline, paired by held-out user (one row
    per model_version and metric): lift = mean_model / mean_popularity - 1 over the version's held-out
    users, for Recall@500, Hit@10 and NDCG@10. Its 95% interval is the delta-method normal interval of a
    ratio of paired means: with d_u = model_u - lift_ratio * popularity_u,
    se = stddev(d_u) / (sqrt(n) * mean_popularity). Null when either policy has no list for the stage or
    the baseline's mean is 0. The popularity baseline is what any release must beat: absolute floors
    alone let it pass (docs/evaluation.md, "Offline thresholds as lifts").
#}
{% set retrieval_k = 500 %}
{% set ranking_k = 10 %}

with

{{ streamrec.offline_user_metric_ctes(retrieval_k, ranking_k) }},

paired as (

    select
        model.model_version,
        model.user_id,
        model.recall_at_k as model_recall,
        baseline.recall_at_k as baseline_recall,
        model.hit_at_k as model_hit,
        baseline.hit_at_k as baseline_hit,
        model.ndcg_at_k as model_ndcg,
        baseline.ndcg_at_k as baseline_ndcg,
        case when model.has_retrieval = 1 and baseline.has_retrieval = 1 then 1 else 0 end as has_retrieval,
        case when model.has_ranking = 1 and baseline.has_ranking = 1 then 1 else 0 end as has_ranking
    from user_metrics as model
    inner join user_metrics as baseline
        on model.model_version = baseline.model_version
            and model.user_id = baseline.user_id
            and baseline.policy = 'popularity'
    where model.policy = 'model'

),

metric_pairs as (

    select
        model_version,
        user_id,
        'recall_at_500' as metric_name,
        model_recall as model_value,
        baseline_recall as baseline_value
    from paired
    where has_retrieval = 1
    union all
    select
        model_version,
        user_id,
        'hit_at_10' as metric_name,
        model_hit as model_value,
        baseline_hit as baseline_value
    from paired
    where has_ranking = 1
    union all
    select
        model_version,
        user_id,
        'ndcg_at_10' as metric_name,
        model_ndcg as model_value,
        baseline_ndcg as baseline_value
    from paired
    where has_ranking = 1

),

means as (

    select
        model_version,
        metric_name,
        count(*) as user_count,
        avg(model_value) as model_mean,
        avg(baseline_value) as baseline_mean
    from metric_pairs
    group by model_version, metric_name

),

residuals as (

    select
        metric_pairs.model_version,
        metric_pairs.metric_name,
        stddev_samp(
            metric_pairs.model_value - (means.model_mean / means.baseline_mean) * metric_pairs.baseline_value
        ) as residual_sd
    from metric_pairs
    inner join means
        on metric_pairs.model_version = means.model_version
            and metric_pairs.metric_name = means.metric_name
    where means.baseline_mean > 0
    group by metric_pairs.model_version, metric_pairs.metric_name

),

final as (

    select
        {{ dbt.concat(["means.model_version", "'|'", "means.metric_name"]) }} as offline_lift_id,
        means.model_version,
        means.metric_name,
        means.user_count,
        round(means.model_mean, 10) as model_mean,
        round(means.baseline_mean, 10) as baseline_mean,
        round({{ streamrec.safe_divide('means.model_mean', 'means.baseline_mean') }} - 1.0, 10) as lift,
        round(residuals.residual_sd / (sqrt(means.user_count) * means.baseline_mean), 10) as lift_standard_error
    from means
    left join residuals
        on means.model_version = residuals.model_version
            and means.metric_name = residuals.metric_name

)

select * from final
