{#- One row per (as_of, item, neighbour): the `item_neighbours_per_item` items most often engaged with by the
    same users within the `window_days` days before the snapshot (user_recent_items), scored by cosine
    similarity with shrinkage: co_users / (sqrt(users(item) * users(neighbour)) + `neighbour_shrinkage`).
    Point-in-time like the features: a snapshot's neighbours use only events before it. -#}
with

recent as (

    select * from {{ ref('user_recent_items') }}

),

item_users as (

    select
        as_of,
        item_id,
        count(*) as user_count
    from recent
    group by 1, 2

),

pairs as (

    select
        a.as_of,
        a.item_id,
        b.item_id as neighbour_item_id,
        count(*) as co_user_count
    from recent as a
    inner join recent as b
        on a.as_of = b.as_of
            and a.user_id = b.user_id
            and a.item_id != b.item_id
    group by 1, 2, 3

),

scored as (

    select
        pairs.as_of,
        pairs.item_id,
        pairs.neighbour_item_id,
        pairs.co_user_count,
        cast(pairs.co_user_count as double)
        / (sqrt(cast(item_users.user_count * neighbour_users.user_count as double)) + {{ var('neighbour_shrinkage') }})
            as similarity_score
    from pairs
    inner join item_users
        on pairs.as_of = item_users.as_of
            and pairs.item_id = item_users.item_id
    inner join item_users as neighbour_users
        on pairs.as_of = neighbour_users.as_of
            and pairs.neighbour_item_id = neighbour_users.item_id

),

ranked as (

    select
        scored.as_of,
        scored.item_id,
        scored.neighbour_item_id,
        scored.co_user_count,
        scored.similarity_score,
        row_number() over (
            partition by scored.as_of, scored.item_id
            order by scored.similarity_score desc, scored.neighbour_item_id asc
        ) as neighbour_rank
    from scored

)

select
    as_of,
    item_id,
    neighbour_item_id,
    cast(co_user_count as integer) as co_user_count,
    similarity_score,
    cast(neighbour_rank as integer) as neighbour_rank
from ranked
where neighbour_rank <= {{ var('item_neighbours_per_item') }}
