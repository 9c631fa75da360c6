{#- Per user, day and span: how many creators the user played that day stay counted for `span_days` days
    (until the next play of the same creator, at most window_days); drives user_distinct_creators_30d_count. -#}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

items as (

    select * from {{ ref('stg_raw__items') }}

),

day_map as (

    select * from {{ ref('int_days_mapped_to_as_of') }}

),

play_days as (

    -- days older than every window cannot count for any snapshot
    select distinct
        interactions.user_id,
        items.creator_id,
        {{ streamrec.day_index('interactions.event_ts') }} as day_index
    from interactions
    inner join items on interactions.item_id = items.item_id
    where interactions.event_type = 'play'
        and {{ streamrec.day_index('interactions.event_ts') }} >= (select min(day_map.day_index) from day_map)

),

{{ streamrec.play_spans('play_days', 'user_id', 'creator_id') }}
