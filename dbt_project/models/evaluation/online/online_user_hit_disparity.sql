{#
    User-side Hit@10 disparity per serving version (one row per model_version): the largest gap
    between the judged age bands, max_g rate_g - min_g rate_g, with a normal 95% interval for the
    difference of the two extreme groups' proportions, gap +- 1.96 sqrt(p1 q1 / n1 + p2 q2 / n2).
    Null with fewer than two judged groups; `sample_size` is the smallest judged group's requests.
#}
with

rates as (

    select * from {{ ref('online_user_hit_rates') }}

),

judged as (

    select
        *,
        row_number() over (partition by model_version order by hit_at_10_rate desc, user_age_band asc) as rank_high,
        row_number() over (partition by model_version order by hit_at_10_rate asc, user_age_band asc) as rank_low
    from rates
    where is_judged

),

extremes as (

    select
        model_version,
        count(*) as judged_group_count,
        min(request_count) as smallest_judged_request_count,
        max(case when rank_high = 1 then user_age_band end) as best_age_band,
        max(case when rank_high = 1 then hit_at_10_rate end) as best_rate,
        max(case when rank_high = 1 then request_count end) as best_request_count,
        max(case when rank_low = 1 then user_age_band end) as worst_age_band,
        max(case when rank_low = 1 then hit_at_10_rate end) as worst_rate,
        max(case when rank_low = 1 then request_count end) as worst_request_count
    from judged
    group by model_version

),

versions as (

    select
        model_version,
        count(*) as group_count,
        sum(request_count) as request_count,
        max(requests_needed_count) as requests_needed_per_group
    from rates
    group by model_version

),

gaps as (

    select
        versions.model_version,
        versions.group_count,
        versions.request_count,
        versions.requests_needed_per_group,
        extremes.smallest_judged_request_count,
        extremes.best_age_band,
        extremes.worst_age_band,
        coalesce(extremes.judged_group_count, 0) as judged_group_count,
        case when extremes.judged_group_count >= 2 then extremes.best_rate - extremes.worst_rate end as disparity,
        case
            when extremes.judged_group_count >= 2 then
                sqrt(
                    extremes.best_rate * (1.0 - extremes.best_rate) / extremes.best_request_count
                    + extremes.worst_rate * (1.0 - extremes.worst_rate) / extremes.worst_request_count
                )
        end as standard_error
    from versions
    left join extremes on versions.model_version = extremes.model_version

),

final as (

    select
        model_version,
        group_count,
        judged_group_count,
        request_count,
        requests_needed_per_group,
        smallest_judged_request_count as sample_size,
        best_age_band,
        worst_age_band,
        disparity as hit_at_10_disparity,
        case
            when disparity - {{ streamrec.z_95() }} * standard_error < 0 then 0.0
            else disparity - {{ streamrec.z_95() }} * standard_error
        end as hit_at_10_disparity_ci_low,
        disparity + {{ streamrec.z_95() }} * standard_error as hit_at_10_disparity_ci_high
    from gaps

)

select * from final
