{#
    The release scorecard: one row per metric of the evaluation_thresholds seed, judged for the
    serving version (online_serving_version) by its 95% interval (macro gate_status):
      INSUFFICIENT_DATA  no value, or sample_size below the metric's min_sample_size (no impressions
                         at all lands here, so an empty log never fails a build);
      PASS               the whole interval clears the threshold;
      FAIL               the whole interval misses it;
      INCONCLUSIVE       the interval straddles it; samples_to_decide says about how many more sample
                         units (sample_unit) would decide it at the observed spread.
    Every row has an interval: Wilson, Welch, order statistics, delta method, normal over users, or a
    bootstrap over snapshot rows (PSI).
#}
with

thresholds as (

    select * from {{ ref('evaluation_thresholds') }}

),

serving_version as (

    select * from {{ ref('online_serving_version') }}

),

offline_metrics as (

    select * from {{ ref('offline_metrics') }}

),

offline_lifts as (

    select * from {{ ref('offline_lifts') }}

),

skew_bootstrap as (

    select * from {{ ref('online_training_serving_skew_bootstrap') }}

),

serving_health as (

    select * from {{ ref('online_serving_health') }}

),

causal_effects as (

    select * from {{ ref('online_causal_effects') }}

),

exposure_equity as (

    select * from {{ ref('online_creator_exposure_equity') }}

),

hit_disparity as (

    select * from {{ ref('online_user_hit_disparity') }}

),

skew as (

    select * from {{ ref('online_training_serving_skew') }}

),

serving_offline as (

    select offline_metrics.*
    from offline_metrics
    inner join serving_version on offline_metrics.model_version = serving_version.model_version
    where offline_metrics.policy = 'model'

),

serving_lifts as (

    select offline_lifts.*
    from offline_lifts
    inner join serving_version on offline_lifts.model_version = serving_version.model_version

),

serving_health_row as (

    select serving_health.*
    from serving_health
    inner join serving_version on serving_health.model_version = serving_version.model_version

),

serving_effects as (

    select causal_effects.*
    from causal_effects
    inner join serving_version on causal_effects.model_version = serving_version.model_version

),

-- the least equitable dimension (language, new creator, or their intersection) is the one judged
worst_equity as (

    select
        exposure_equity.*,
        row_number() over (order by exposure_equity.exposure_equity, exposure_equity.group_dimension) as equity_rank
    from exposure_equity
    inner join serving_version on exposure_equity.model_version = serving_version.model_version
    where exposure_equity.exposure_equity is not null

),

serving_disparity as (

    select hit_disparity.*
    from hit_disparity
    inner join serving_version on hit_disparity.model_version = serving_version.model_version

),

worst_skew as (

    select
        feature_name,
        reference_tag,
        psi,
        min(snapshot_row_count) over () as snapshot_row_count,
        row_number() over (order by psi desc, feature_name asc) as psi_rank
    from skew

),

metric_values as (

    select
        'retrieval_recall_at_500' as metric,
        recall_at_500_ratio as metric_value,
        recall_at_500_ratio - {{ streamrec.z_95() }} * recall_at_500_standard_error as ci_low,
        recall_at_500_ratio + {{ streamrec.z_95() }} * recall_at_500_standard_error as ci_high,
        user_count as sample_size,
        'offline, policy model; normal interval over users' as detail
    from serving_offline

    union all

    select
        'ranking_hit_at_10' as metric,
        hit_at_10_ratio as metric_value,
        {{ streamrec.wilson_low('round(hit_at_10_ratio * user_count)', 'user_count') }} as ci_low,
        {{ streamrec.wilson_high('round(hit_at_10_ratio * user_count)', 'user_count') }} as ci_high,
        user_count as sample_size,
        'offline, policy model' as detail
    from serving_offline

    union all

    select
        'ranking_ndcg_at_10' as metric,
        ndcg_at_10_score as metric_value,
        ndcg_at_10_score - {{ streamrec.z_95() }} * ndcg_at_10_standard_error as ci_low,
        ndcg_at_10_score + {{ streamrec.z_95() }} * ndcg_at_10_standard_error as ci_high,
        user_count as sample_size,
        'offline, policy model; normal interval over users' as detail
    from serving_offline

    union all

    select
        {{ dbt.concat(["case metric_name when 'recall_at_500' then 'retrieval_' else 'ranking_' end",
                       "metric_name", "'_lift'"]) }} as metric,
        lift as metric_value,
        lift - {{ streamrec.z_95() }} * lift_standard_error as ci_low,
        lift + {{ streamrec.z_95() }} * lift_standard_error as ci_high,
        user_count as sample_size,
        {{ dbt.concat(["'model '", "cast(round(model_mean, 4) as " ~ dbt.type_string() ~ ")",
                       "' vs popularity '", "cast(round(baseline_mean, 4) as " ~ dbt.type_string() ~ ")",
                       "', paired by user, delta method'"]) }} as detail
    from serving_lifts

    union all

    select
        'p99_latency_ms' as metric,
        p99_latency_ms as metric_value,
        p99_latency_ci_low_ms as ci_low,
        p99_latency_ci_high_ms as ci_high,
        latency_request_count as sample_size,
        'nearest rank over requests' as detail
    from serving_health_row

    union all

    select
        'feature_store_hit_rate' as metric,
        feature_store_hit_rate as metric_value,
        feature_store_hit_rate_ci_low as ci_low,
        feature_store_hit_rate_ci_high as ci_high,
        request_count as sample_size,
        'requests not served by cold start' as detail
    from serving_health_row

    union all

    select
        'feature_snapshot_age_hours' as metric,
        feature_snapshot_age_hours as metric_value,
        feature_snapshot_age_ci_low_hours as ci_low,
        feature_snapshot_age_ci_high_hours as ci_high,
        snapshot_request_count as sample_size,
        'mean age of the materialized features each request read' as detail
    from serving_health_row

    union all

    select
        'training_serving_skew_max_psi' as metric,
        worst_skew.psi as metric_value,
        skew_bootstrap.max_psi_ci_low as ci_low,
        skew_bootstrap.max_psi_ci_high as ci_high,
        worst_skew.snapshot_row_count as sample_size,
        {{ dbt.concat(["'worst feature '", "worst_skew.feature_name", "', reference '", "worst_skew.reference_tag",
                       "'; bootstrap over snapshot rows'"]) }} as detail
    from worst_skew
    cross join skew_bootstrap
    where worst_skew.psi_rank = 1

    union all

    select
        'causal_ate_engagement' as metric,
        effect as metric_value,
        ci_low,
        ci_high,
        sample_size,
        'personalized minus holdout, per-user engagement rate' as detail
    from serving_effects
    where estimate_name = 'ate_engagement_rate'

    union all

    select
        'naive_ctr_improvement' as metric,
        effect as metric_value,
        ci_low,
        ci_high,
        sample_size,
        'personalized minus holdout and cold_start, per slot' as detail
    from serving_effects
    where estimate_name = 'naive_ctr_improvement'

    union all

    select
        'creator_exposure_equity' as metric,
        exposure_equity as metric_value,
        exposure_equity_ci_low as ci_low,
        exposure_equity_ci_high as ci_high,
        slot_count as sample_size,
        {{ dbt.concat(["'dimension '", "group_dimension"]) }} as detail
    from worst_equity
    where equity_rank = 1

    union all

    select
        'user_hit_at_10_disparity' as metric,
        hit_at_10_disparity as metric_value,
        hit_at_10_disparity_ci_low as ci_low,
        hit_at_10_disparity_ci_high as ci_high,
        sample_size,
        {{ dbt.concat(["coalesce(best_age_band, 'n/a')", "' vs '", "coalesce(worst_age_band, 'n/a')"]) }} as detail
    from serving_disparity

),

judged as (

    select
        thresholds.metric,
        thresholds.area,
        (select max(serving_version.model_version) from serving_version) as model_version,
        metric_values.metric_value as value,
        metric_values.ci_low,
        metric_values.ci_high,
        thresholds.threshold,
        thresholds.direction,
        cast(metric_values.sample_size as {{ dbt.type_bigint() }}) as sample_size,
        thresholds.min_sample_size,
        thresholds.sample_unit,
        metric_values.detail,
        {{ streamrec.gate_status(
            'metric_values.metric_value', 'metric_values.ci_low', 'metric_values.ci_high', 'thresholds.threshold',
            'thresholds.direction', 'metric_values.sample_size', 'thresholds.min_sample_size'
        ) }} as status
    from thresholds
    left join metric_values on thresholds.metric = metric_values.metric

),

decided as (

    select
        judged.*,
        case when judged.status = 'INCONCLUSIVE' then
                {{ streamrec.samples_to_decide('value', 'ci_low', 'ci_high', 'threshold', 'sample_size') }}
        end as samples_to_decide
    from judged

),

final as (

    select
        metric,
        area,
        model_version,
        value,
        ci_low,
        ci_high,
        threshold,
        direction,
        sample_size,
        min_sample_size,
        sample_unit,
        status,
        samples_to_decide,
        {{ dbt.concat([
            "metric",
            "' = '",
            "coalesce(cast(round(value, 4) as " ~ dbt.type_string() ~ "), 'n/a')",
            "case when ci_low is null then '' else " ~ dbt.concat([
                "' [95% CI '", "cast(round(ci_low, 4) as " ~ dbt.type_string() ~ ")", "', '",
                "cast(round(ci_high, 4) as " ~ dbt.type_string() ~ ")", "']'"]) ~ " end",
            "case status when 'FAIL' then case when direction = '>=' then ' < ' else ' > ' end"
            ~ " when 'PASS' then case when direction = '>=' then ' >= ' else ' <= ' end else ' vs ' end",
            "'threshold '",
            "cast(threshold as " ~ dbt.type_string() ~ ")",
            "' ('",
            "status",
            "case when samples_to_decide is null then '' else " ~ dbt.concat([
                "': about '", "cast(samples_to_decide as " ~ dbt.type_string() ~ ")", "' more '", "sample_unit",
                "' would decide it'"]) ~ " end",
            "', n = '",
            "coalesce(cast(sample_size as " ~ dbt.type_string() ~ "), '0')",
            "' '",
            "sample_unit",
            "', min '",
            "cast(min_sample_size as " ~ dbt.type_string() ~ ")",
            "case when detail is null then '' else " ~ dbt.concat(["'; '", "detail"]) ~ " end",
            "')'",
        ]) }} as summary
    from decided

)

select * from final
