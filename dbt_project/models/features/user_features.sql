{#- One row per user and as_of (each midnight of the day grid), from events strictly before as_of.
    Per-day aggregates are fanned out to the snapshots whose windows contain their day (an equi-join
    on int_days_mapped_to_as_of, days_before >= 1), so nothing on or after as_of is ever counted. -#}
{%- if var('window_days') < 30 -%}
    {{ exceptions.raise_compiler_error("var window_days must be at least 30 (the longest feature window), got " ~ var('window_days')) }}
{%- endif %}
with

users as (

    select * from {{ ref('stg_raw__users') }}

),

as_of_days as (

    select * from {{ ref('int_as_of_days_generated') }}

),

day_map as (

    select * from {{ ref('int_days_mapped_to_as_of') }}

),

interaction_days as (

    select * from {{ ref('int_interactions_aggregated_to_user_days') }}

),

session_days as (

    select * from {{ ref('int_sessions_aggregated_to_user_days') }}

),

creator_spans as (

    select * from {{ ref('int_plays_spanned_to_user_days') }}

),

user_snapshots as (

    -- every user who had signed up before each as_of
    select
        users.user_id,
        as_of_days.as_of,
        users.signup_ts,
        users.language_code,
        users.age_band_code
    from users
    cross join as_of_days
    where users.signup_ts < as_of_days.as_of

),

interaction_windows as (

    select
        interaction_days.user_id,
        day_map.as_of,
        sum(case when day_map.days_before <= 7 then interaction_days.interaction_count else 0 end) as interactions_7d,
        sum(case when day_map.days_before <= 30 then interaction_days.interaction_count else 0 end) as interactions_30d,
        sum(case when day_map.days_before <= 30 then interaction_days.play_count else 0 end) as plays_30d,
        sum(case when day_map.days_before <= 30 then interaction_days.complete_count else 0 end) as completes_30d,
        sum(case when day_map.days_before <= 30 then interaction_days.like_count else 0 end) as likes_30d,
        sum(case when day_map.days_before <= 30 then interaction_days.skip_count else 0 end) as skips_30d,
        sum(case when day_map.days_before <= 30 then interaction_days.watch_seconds else 0 end) as watch_seconds_30d,
        max(interaction_days.last_event_ts) as last_event_ts
    from interaction_days
    inner join day_map on interaction_days.day_index = day_map.day_index
    group by 1, 2

),

earlier_last_events as (

    -- activity older than every window: only its latest event matters (days since last interaction)
    select
        interaction_days.user_id,
        max(last_event_ts) as last_event_ts
    from interaction_days
    where interaction_days.day_index < (select min(day_map.day_index) from day_map)
    group by 1

),

session_windows as (

    select
        session_days.user_id,
        day_map.as_of,
        sum(session_days.session_count) as sessions_7d,
        sum(session_days.session_seconds) as session_seconds_7d
    from session_days
    inner join day_map on session_days.day_index = day_map.day_index
    where day_map.days_before <= 7
    group by 1, 2

),

creator_windows as (

    select
        creator_spans.user_id,
        day_map.as_of,
        sum(creator_spans.member_count) as distinct_creators_30d
    from creator_spans
    inner join day_map on creator_spans.day_index = day_map.day_index
    where day_map.days_before <= creator_spans.span_days
        and day_map.days_before <= 30
    group by 1, 2

),

joined as (

    select
        user_snapshots.user_id,
        user_snapshots.as_of,
        user_snapshots.signup_ts,
        user_snapshots.language_code,
        user_snapshots.age_band_code,
        coalesce(interaction_windows.interactions_7d, 0) as interactions_7d,
        coalesce(interaction_windows.interactions_30d, 0) as interactions_30d,
        coalesce(interaction_windows.plays_30d, 0) as plays_30d,
        coalesce(interaction_windows.completes_30d, 0) as completes_30d,
        coalesce(interaction_windows.likes_30d, 0) as likes_30d,
        coalesce(interaction_windows.skips_30d, 0) as skips_30d,
        coalesce(interaction_windows.watch_seconds_30d, 0) as watch_seconds_30d,
        coalesce(interaction_windows.last_event_ts, earlier_last_events.last_event_ts) as last_event_ts,
        coalesce(session_windows.sessions_7d, 0) as sessions_7d,
        coalesce(session_windows.session_seconds_7d, 0) as session_seconds_7d,
        coalesce(creator_windows.distinct_creators_30d, 0) as distinct_creators_30d
    from user_snapshots
    left join interaction_windows
        on user_snapshots.user_id = interaction_windows.user_id
            and user_snapshots.as_of = interaction_windows.as_of
    left join earlier_last_events
        on user_snapshots.user_id = earlier_last_events.user_id
    left join session_windows
        on user_snapshots.user_id = session_windows.user_id
            and user_snapshots.as_of = session_windows.as_of
    left join creator_windows
        on user_snapshots.user_id = creator_windows.user_id
            and user_snapshots.as_of = creator_windows.as_of

),

features as (

    select
        ----------  keys
        user_id,
        as_of,

        ----------  activity
        cast(
            case when sessions_7d > 0 then session_seconds_7d / sessions_7d else 0.0 end as double
        ) as user_avg_session_length_7d_seconds,
        cast(interactions_30d as {{ dbt.type_bigint() }}) as user_interaction_count_30d_count,
        cast(interactions_7d as {{ dbt.type_bigint() }}) as user_interaction_count_7d_count,
        cast(sessions_7d as {{ dbt.type_bigint() }}) as user_session_count_7d_count,
        cast(plays_30d as {{ dbt.type_bigint() }}) as user_play_count_30d_count,
        cast({{ streamrec.capped_ratio('completes_30d', 'plays_30d') }} as double) as user_complete_30d_ratio,
        cast({{ streamrec.capped_ratio('skips_30d', 'plays_30d + skips_30d') }} as double) as user_skip_30d_ratio,
        cast({{ streamrec.capped_ratio('likes_30d', 'plays_30d') }} as double) as user_like_30d_ratio,
        cast(watch_seconds_30d / 3600.0 as double) as user_watch_time_30d_hours,
        cast(distinct_creators_30d as {{ dbt.type_bigint() }}) as user_distinct_creators_30d_count,

        ----------  lifecycle
        cast({{ streamrec.days_between('signup_ts', 'as_of') }} as double) as user_tenure_days,
        cast({{ streamrec.days_between('last_event_ts', 'as_of') }} as double) as user_days_since_last_interaction_days,

        ----------  profile
        cast(language_code as {{ dbt.type_string() }}) as user_language_code,
        cast(age_band_code as {{ dbt.type_string() }}) as user_age_band_code,
        {{ streamrec.days_between('signup_ts', 'as_of') }} < 30 as user_is_new_flag

    from joined

)

select * from features
