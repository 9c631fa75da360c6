{#- One row per labelled interaction (play/complete/like = 1, skip = 0) with the user's and the item's
    features at the latest grid snapshot at or before the midnight that starts the interaction's day (that
    midnight itself on the grid's daily days, up to `history_every_days` - 1 days earlier on its weekly
    history): the features use only events before that snapshot, so no label leaks into its own features.
    Interactions before the grid's first snapshot, or by users/items that did not exist at their snapshot,
    have no row. -#}
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

as_of_days as (

    select * from {{ ref('int_as_of_days_generated') }}

),

labelled as (

    select
        interaction_id,
        user_id,
        item_id,
        event_ts,
        cast({{ dbt.date_trunc('day', 'event_ts') }} as {{ dbt.type_timestamp() }}) as event_day,
        event_type,
        cast(case when event_type in {{ streamrec.positive_event_types() }} then 1 else 0 end as integer) as label,
        watch_seconds
    from interactions
    where event_type in {{ streamrec.interaction_event_types() }}

),

event_days as (

    select distinct labelled.event_day from labelled

),

snapshot_of_day as (

    -- the latest snapshot at or before each event day (a few hundred days x a few dozen snapshots)
    select
        event_days.event_day,
        max(as_of_days.as_of) as as_of
    from event_days
    inner join as_of_days on event_days.event_day >= as_of_days.as_of
    group by event_days.event_day

),

snapshotted as (

    select
        labelled.interaction_id,
        labelled.user_id,
        labelled.item_id,
        labelled.event_ts,
        snapshot_of_day.as_of,
        labelled.event_type,
        labelled.label,
        labelled.watch_seconds
    from labelled
    inner join snapshot_of_day on labelled.event_day = snapshot_of_day.event_day

),

joined as (

    select
        snapshotted.interaction_id,
        snapshotted.user_id,
        snapshotted.item_id,
        item_features.creator_id,
        snapshotted.event_ts,
        snapshotted.as_of,
        snapshotted.event_type,
        snapshotted.label,
        snapshotted.watch_seconds,
        {{ streamrec.qualified_columns('user_features', user_columns) }},
        {{ streamrec.qualified_columns('item_features', item_columns) }}
    from snapshotted
    inner join user_features
        on snapshotted.user_id = user_features.user_id
            and snapshotted.as_of = user_features.as_of
    inner join item_features
        on snapshotted.item_id = item_features.item_id
            and snapshotted.as_of = item_features.as_of

)

select * from joined
