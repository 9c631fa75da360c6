{#
    Online Hit@10 per serving version and user age band (one row per model_version, user_age_band):
    the share of the personalised policy's requests whose top 10 slots got a positive engagement
    (play, complete or like), with a Wilson 95% interval. Age bands come from the latest
    features.user_features snapshot ('unknown' for users missing from it).

    A group is judged only with at least `requests_needed_count` requests: the per-group n that tells
    two proportions threshold apart around the version's overall rate pbar (p1 = pbar + d/2,
    p2 = pbar - d/2, d = user_hit_at_10_disparity's threshold, clamped to [0, 1]) at 5% two-sided and
    80% power: n = (z_a sqrt(2 pm (1 - pm)) + z_b sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2.
#}
with

requests as (

    select * from {{ ref('online_request_outcomes') }}

),

user_features as (

    select * from {{ ref('user_features') }}

),

thresholds as (

    select * from {{ ref('evaluation_thresholds') }}

),

disparity_threshold as (

    select max(threshold) as threshold
    from thresholds
    where metric = 'user_hit_at_10_disparity'

),

latest_users as (

    select
        user_features.user_id,
        user_features.user_age_band_code as user_age_band
    from user_features
    where user_features.as_of = (select max(latest.as_of) from user_features as latest)

),

personalised_requests as (

    select
        requests.model_version,
        requests.is_hit_at_10,
        coalesce(latest_users.user_age_band, 'unknown') as user_age_band
    from requests
    left join latest_users on requests.user_id = latest_users.user_id
    where requests.policy = 'personalized'

),

version_rates as (

    select
        model_version,
        avg(cast(is_hit_at_10 as double)) as overall_hit_rate
    from personalised_requests
    group by model_version

),

planned as (

    select
        version_rates.model_version,
        version_rates.overall_hit_rate,
        least(greatest(version_rates.overall_hit_rate + disparity_threshold.threshold / 2.0, 0.0), 1.0) as p_high,
        least(greatest(version_rates.overall_hit_rate - disparity_threshold.threshold / 2.0, 0.0), 1.0) as p_low
    from version_rates
    cross join disparity_threshold

),

groups as (

    select
        model_version,
        user_age_band,
        count(*) as request_count,
        sum(is_hit_at_10) as hit_count
    from personalised_requests
    group by model_version, user_age_band

),

final as (

    select
        {{ dbt.concat(["groups.model_version", "'|'", "groups.user_age_band"]) }} as user_hit_rate_id,
        groups.model_version,
        groups.user_age_band,
        groups.request_count,
        groups.hit_count,
        {{ streamrec.safe_divide('groups.hit_count', 'groups.request_count') }} as hit_at_10_rate,
        {{ streamrec.wilson_low('groups.hit_count', 'groups.request_count') }} as hit_at_10_rate_ci_low,
        {{ streamrec.wilson_high('groups.hit_count', 'groups.request_count') }} as hit_at_10_rate_ci_high,
        planned.overall_hit_rate,
        cast(
            {{ streamrec.two_proportion_sample_size('planned.p_high', 'planned.p_low') }}
            as {{ dbt.type_bigint() }}
        ) as requests_needed_count,
        coalesce(
            groups.request_count >= {{ streamrec.two_proportion_sample_size('planned.p_high', 'planned.p_low') }},
            false
        ) as is_judged
    from groups
    inner join planned on groups.model_version = planned.model_version

)

select * from final
