{#
    Serving health per model version (one row per model_version), from the request log:
    - p99 latency (ms) by the nearest-rank rule: the latency at rank ceil(0.99 * n) of the n requests
      with a logged latency sorted ascending; its distribution-free 95% interval takes the order
      statistics at ranks floor(n p - 1.96 sqrt(n p (1 - p))) and ceil(n p + 1.96 sqrt(n p (1 - p))) + 1,
      clamped to [1, n] (p = 0.99).
    - feature-store hit rate: share of requests served with the user's online features, i.e. whose
      policy is not 'cold_start' (the API falls back to cold start exactly when the bundle's feature
      snapshot has no row for the user), with a Wilson 95% interval. With a materialized snapshot
      (`streamrec materialize`) a miss is a user the snapshot lacks.
    - feature snapshot age (hours): mean of served_at minus the as_of of the features read, over the
      requests that read a materialized snapshot (snapshot_id not null; a bundle's own features are as
      old as the bundle and are not what this judges), with a normal 95% interval.
#}
{% set quantile = 0.99 %}

with

requests as (

    select * from {{ ref('online_request_outcomes') }}

),

ranked as (

    select
        model_version,
        latency_ms,
        row_number() over (partition by model_version order by latency_ms, request_id) as latency_rank,
        count(*) over (partition by model_version) as latency_count
    from requests
    where latency_ms is not null

),

rank_bounds as (

    select distinct
        model_version,
        latency_count,
        cast(ceil({{ quantile }} * latency_count) as {{ dbt.type_bigint() }}) as point_rank,
        cast(floor(
            {{ quantile }} * latency_count
            - {{ streamrec.z_95() }} * sqrt(latency_count * {{ quantile }} * (1.0 - {{ quantile }}))
        ) as {{ dbt.type_bigint() }}) as low_rank,
        cast(ceil(
            {{ quantile }} * latency_count
            + {{ streamrec.z_95() }} * sqrt(latency_count * {{ quantile }} * (1.0 - {{ quantile }}))
        ) as {{ dbt.type_bigint() }}) + 1 as high_rank
    from ranked

),

latency_quantiles as (

    select
        rank_bounds.model_version,
        rank_bounds.latency_count,
        max(case when ranked.latency_rank = rank_bounds.point_rank then ranked.latency_ms end) as p99_latency_ms,
        max(case
            when ranked.latency_rank = (case when rank_bounds.low_rank < 1 then 1 else rank_bounds.low_rank end)
                then ranked.latency_ms
        end) as p99_latency_ci_low_ms,
        max(case
            when ranked.latency_rank = (
                    case when rank_bounds.high_rank > rank_bounds.latency_count then rank_bounds.latency_count
                        else rank_bounds.high_rank
                    end
                ) then ranked.latency_ms
        end) as p99_latency_ci_high_ms
    from rank_bounds
    inner join ranked on rank_bounds.model_version = ranked.model_version
    group by rank_bounds.model_version, rank_bounds.latency_count

),

feature_hits as (

    select
        model_version,
        count(*) as request_count,
        sum(case when policy = 'cold_start' then 0 else 1 end) as feature_hit_count
    from requests
    group by model_version

),

feature_ages as (

    select
        model_version,
        count(*) as snapshot_request_count,
        avg(feature_age_seconds) / 3600.0 as feature_snapshot_age_hours,
        stddev_samp(feature_age_seconds) / 3600.0 as feature_snapshot_age_sd_hours
    from requests
    where snapshot_id is not null and feature_age_seconds is not null
    group by model_version

),

final as (

    select
        feature_hits.model_version,
        feature_hits.request_count,
        latency_quantiles.p99_latency_ms,
        latency_quantiles.p99_latency_ci_low_ms,
        latency_quantiles.p99_latency_ci_high_ms,
        feature_hits.feature_hit_count,
        coalesce(latency_quantiles.latency_count, 0) as latency_request_count,
        {{ streamrec.safe_divide('feature_hits.feature_hit_count', 'feature_hits.request_count') }}
            as feature_store_hit_rate,
        {{ streamrec.wilson_low('feature_hits.feature_hit_count', 'feature_hits.request_count') }}
            as feature_store_hit_rate_ci_low,
        {{ streamrec.wilson_high('feature_hits.feature_hit_count', 'feature_hits.request_count') }}
            as feature_store_hit_rate_ci_high,
        coalesce(feature_ages.snapshot_request_count, 0) as snapshot_request_count,
        feature_ages.feature_snapshot_age_hours,
        (
            feature_ages.feature_snapshot_age_hours
            - {{ streamrec.z_95() }} * coalesce(feature_ages.feature_snapshot_age_sd_hours, 0)
            / sqrt(feature_ages.snapshot_request_count)
        ) as feature_snapshot_age_ci_low_hours,
        (
            feature_ages.feature_snapshot_age_hours
            + {{ streamrec.z_95() }} * coalesce(feature_ages.feature_snapshot_age_sd_hours, 0)
            / sqrt(feature_ages.snapshot_request_count)
        ) as feature_snapshot_age_ci_high_hours
    from feature_hits
    left join latency_quantiles on feature_hits.model_version = latency_quantiles.model_version
    left join feature_ages on feature_hits.model_version = feature_ages.model_version

)

select * from final
