{#- One row per (as_of, user, item): the items a user engaged with (play, complete, like) in the `window_days`
    days before each snapshot, at most `recent_items_per_user` of them, most recent first. What the item-to-item
    candidate source starts from, at serving time (the bundle's copy at the serving as_of) and in training
    (each row's own as_of); days on or after as_of never count (int_days_mapped_to_as_of, days_before >= 1). -#}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

day_map as (

    select * from {{ ref('int_days_mapped_to_as_of') }}

),

engaged_days as (

    select
        user_id,
        item_id,
        {{ streamrec.day_index('event_ts') }} as day_index,
        max(event_ts) as last_event_ts
    from interactions
    where event_type in {{ streamrec.positive_event_types() }}
    group by 1, 2, 3

),

windowed as (

    select
        day_map.as_of,
        engaged_days.user_id,
        engaged_days.item_id,
        max(engaged_days.last_event_ts) as last_event_ts
    from engaged_days
    inner join day_map on engaged_days.day_index = day_map.day_index
    where day_map.days_before <= {{ var('window_days') }}
    group by 1, 2, 3

),

ranked as (

    select
        windowed.as_of,
        windowed.user_id,
        windowed.item_id,
        windowed.last_event_ts,
        row_number() over (
            partition by windowed.as_of, windowed.user_id
            order by windowed.last_event_ts desc, windowed.item_id asc
        ) as recency_rank
    from windowed

)

select
    as_of,
    user_id,
    item_id,
    last_event_ts,
    cast(recency_rank as integer) as recency_rank
from ranked
where recency_rank <= {{ var('recent_items_per_user') }}
