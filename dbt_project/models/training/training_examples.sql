{#- One row per labelled interaction (play/complete/like = 1, skip = 0) with the user's and the item's
    features at the midnight that starts the interaction's day: an equi-join on the day grid, and the
    features use only events before that midnight, so no label leaks into its own features. Interactions
    outside the grid's days, or by users/items that did not exist at that midnight, have no row. -#}
{%- set user_columns = streamrec.feature_columns('user_features', ['user_id', 'as_of']) -%}
{%- set item_columns = streamrec.feature_columns('item_features', ['item_id', 'creator_id', 'as_of']) -%}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

user_features as (

    select * from {{ ref('user_features') }}

),

item_features as (

    select * from {{ ref('item_features') }}

),

labelled as (

    select
        interaction_id,
        user_id,
        item_id,
        event_ts,
        cast({{ dbt.date_trunc('day', 'event_ts') }} as {{ dbt.type_timestamp() }}) as as_of,
        event_type,
        cast(case when event_type in {{ streamrec.positive_event_types() }} then 1 else 0 end as integer) as label,
        watch_seconds
    from interactions
    where event_type in {{ streamrec.interaction_event_types() }}

),

joined as (

    select
        labelled.interaction_id,
        labelled.user_id,
        labelled.item_id,
        item_features.creator_id,
        labelled.event_ts,
        labelled.as_of,
        labelled.event_type,
        labelled.label,
        labelled.watch_seconds,
        {{ streamrec.qualified_columns('user_features', user_columns) }},
        {{ streamrec.qualified_columns('item_features', item_columns) }}
    from labelled
    inner join user_features
        on labelled.user_id = user_features.user_id
            and labelled.as_of = user_features.as_of
    inner join item_features
        on labelled.item_id = item_features.item_id
            and labelled.as_of = item_features.as_of

)

select * from joined
