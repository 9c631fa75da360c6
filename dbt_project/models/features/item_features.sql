{#- One row per item (with its creator) and as_of, from events strictly before as_of; the same fan-out of
    per-day aggregates as user_features, plus a percentile rank of 30-day plays within each as_of. -#}
{%- if var('window_days') < 30 -%}
    {{ exceptions.raise_compiler_error("var window_days must be at least 30 (the longest feature window), got " ~ var('window_days')) }}
{%- endif %}
with

items as (

    select * from {{ ref('stg_raw__items') }}

),

creators as (

    select * from {{ ref('stg_raw__creators') }}

),

as_of_days as (

    select * from {{ ref('int_as_of_days_generated') }}

),

day_map as (

    select * from {{ ref('int_days_mapped_to_as_of') }}

),

item_days as (

    select * from {{ ref('int_interactions_aggregated_to_item_days') }}

),

viewer_spans as (

    select * from {{ ref('int_plays_spanned_to_item_days') }}

),

item_snapshots as (

    -- every item published before each as_of
    select
        items.item_id,
        items.creator_id,
        as_of_days.as_of,
        items.genre_code,
        items.length_seconds,
        items.published_ts
    from items
    cross join as_of_days
    where items.published_ts < as_of_days.as_of

),

catalog_sizes as (

    select
        creator_id,
        as_of,
        count(*) as catalog_size
    from item_snapshots
    group by 1, 2

),

item_windows as (

    select
        item_days.item_id,
        day_map.as_of,
        sum(case when day_map.days_before <= 7 then item_days.play_count else 0 end) as plays_7d,
        sum(case when day_map.days_before <= 7 then item_days.skip_count else 0 end) as skips_7d,
        sum(item_days.play_count) as plays_30d,
        sum(item_days.complete_count) as completes_30d,
        sum(item_days.like_count) as likes_30d,
        sum(item_days.play_watch_seconds) as play_watch_seconds_30d
    from item_days
    inner join day_map on item_days.day_index = day_map.day_index
    where day_map.days_before <= 30
    group by 1, 2

),

viewer_windows as (

    select
        viewer_spans.item_id,
        day_map.as_of,
        sum(viewer_spans.member_count) as unique_viewers_30d
    from viewer_spans
    inner join day_map on viewer_spans.day_index = day_map.day_index
    where day_map.days_before <= viewer_spans.span_days
        and day_map.days_before <= 30
    group by 1, 2

),

joined as (

    select
        item_snapshots.item_id,
        item_snapshots.creator_id,
        item_snapshots.as_of,
        item_snapshots.genre_code,
        item_snapshots.length_seconds,
        {{ streamrec.days_between('item_snapshots.published_ts', 'item_snapshots.as_of') }} as age_days,
        coalesce(creators.language_code, 'unknown') as creator_language_code,
        {{ streamrec.days_between('creators.created_ts', 'item_snapshots.as_of') }} as creator_age_days,
        catalog_sizes.catalog_size,
        coalesce(item_windows.plays_7d, 0) as plays_7d,
        coalesce(item_windows.skips_7d, 0) as skips_7d,
        coalesce(item_windows.plays_30d, 0) as plays_30d,
        coalesce(item_windows.completes_30d, 0) as completes_30d,
        coalesce(item_windows.likes_30d, 0) as likes_30d,
        coalesce(item_windows.play_watch_seconds_30d, 0) as play_watch_seconds_30d,
        coalesce(viewer_windows.unique_viewers_30d, 0) as unique_viewers_30d
    from item_snapshots
    left join creators
        on item_snapshots.creator_id = creators.creator_id
    inner join catalog_sizes
        on item_snapshots.creator_id = catalog_sizes.creator_id
            and item_snapshots.as_of = catalog_sizes.as_of
    left join item_windows
        on item_snapshots.item_id = item_windows.item_id
            and item_snapshots.as_of = item_windows.as_of
    left join viewer_windows
        on item_snapshots.item_id = viewer_windows.item_id
            and item_snapshots.as_of = viewer_windows.as_of

),

features as (

    select
        ----------  keys
        item_id,
        creator_id,
        as_of,

        ----------  engagement
        cast(
            case
                when age_days >= 7 then {{ streamrec.capped_ratio('plays_7d', 'plays_7d + skips_7d') }}
            end as double
        ) as item_ctr_7d_ratio,
        cast(plays_7d as {{ dbt.type_bigint() }}) as item_play_count_7d_count,
        cast(plays_30d as {{ dbt.type_bigint() }}) as item_play_count_30d_count,
        cast(unique_viewers_30d as {{ dbt.type_bigint() }}) as item_unique_viewers_30d_count,
        cast(likes_30d as {{ dbt.type_bigint() }}) as item_like_count_30d_count,
        cast({{ streamrec.capped_ratio('completes_30d', 'plays_30d') }} as double) as item_complete_30d_ratio,
        cast(
            case when plays_30d > 0 then play_watch_seconds_30d / plays_30d / 60.0 end as double
        ) as item_avg_watch_30d_minutes,

        ----------  content
        cast(length_seconds as double) as item_length_seconds,
        cast(age_days as double) as item_age_days,
        cast({{ streamrec.percent_rank('plays_30d', 'as_of') }} as double) as item_popularity_30d_score,
        cast(catalog_size as {{ dbt.type_bigint() }}) as item_creator_catalog_size_count,
        cast(genre_code as {{ dbt.type_string() }}) as item_genre_code,
        cast(creator_language_code as {{ dbt.type_string() }}) as item_creator_language_code,
        coalesce(creator_age_days < 90, false) as item_creator_is_new_flag

    from joined

)

select * from features
