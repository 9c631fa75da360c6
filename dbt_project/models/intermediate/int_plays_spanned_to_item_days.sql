{#- Per item, day and span: how many users who played the item that day stay counted for `span_days` days
    (until their next play of it, at most window_days); drives item_unique_viewers_30d_count. -#}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

day_map as (

    select * from {{ ref('int_days_mapped_to_as_of') }}

),

play_days as (

    -- days older than every window cannot count for any snapshot
    select distinct
        item_id,
        user_id,
        {{ streamrec.day_index('event_ts') }} as day_index
    from interactions
    where event_type = 'play'
        and {{ streamrec.day_index('event_ts') }} >= (select min(day_map.day_index) from day_map)

),

{{ streamrec.play_spans('play_days', 'item_id', 'user_id') }}
