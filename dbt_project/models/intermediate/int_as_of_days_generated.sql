{#- The day grid: one row per as_of snapshot. The final (serving) as_of is the var `as_of` or the
    midnight after the last raw event; before it come `snapshot_days` daily midnights, and before those,
    every `history_every_days` days back to the first raw event (at most `history_days` more days), so
    training examples from every day of history can join a snapshot taken before them. -#}
{%- set recent_days = var('snapshot_days') -%}
{%- set history_days = var('history_days') -%}
{%- set every_days = var('history_every_days') -%}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

sessions as (

    select * from {{ ref('stg_raw__sessions') }}

),

last_events as (

    select
        max(event_ts) as last_event_ts,
        min(event_ts) as first_event_ts
    from interactions
    union all
    select
        max(started_ts) as last_event_ts,
        min(started_ts) as first_event_ts
    from sessions

),

final_as_of as (

    {%- if var('as_of') %}
    select
        {{ dbt.date_trunc('day', "cast('" ~ var('as_of') ~ "' as " ~ dbt.type_timestamp() ~ ")") }} as as_of,
        min(first_event_ts) as first_event_ts
    from last_events
    {%- else %}
        select
            {{ dbt.dateadd('day', 1, dbt.date_trunc('day', 'max(last_event_ts)')) }} as as_of,
            min(first_event_ts) as first_event_ts
        from last_events
    {%- endif %}

),

day_offsets as (

    {{ streamrec.day_offsets(recent_days + history_days) }}

),

grid as (

    select
        cast({{ dbt.dateadd('day', '-day_offsets.day_offset', 'final_as_of.as_of') }} as {{ dbt.type_timestamp() }})
            as as_of,
        day_offsets.day_offset = 0 as is_serving,
        day_offsets.day_offset,
        final_as_of.first_event_ts
    from final_as_of
    cross join day_offsets
    where final_as_of.as_of is not null

),

kept as (

    -- every recent day; older days only every `history_every_days` and only after some event happened
    select
        grid.as_of,
        grid.is_serving
    from grid
    where grid.day_offset <= {{ recent_days }}
        or (
            mod(grid.day_offset - {{ recent_days }}, {{ every_days }}) = 0
            and grid.as_of > grid.first_event_ts
        )

)

select
    kept.as_of,
    {{ streamrec.day_index('kept.as_of') }} as day_index,
    kept.is_serving
from kept
