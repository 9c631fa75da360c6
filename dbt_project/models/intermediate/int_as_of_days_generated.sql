{#- The day grid: one row per as_of snapshot. The final (serving) as_of is the var `as_of` or the
    midnight after the last raw event; before it come `snapshot_days` daily midnights. -#}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

sessions as (

    select * from {{ ref('stg_raw__sessions') }}

),

last_events as (

    select max(event_ts) as last_event_ts from interactions
    union all
    select max(started_ts) as last_event_ts from sessions

),

final_as_of as (

    {%- if var('as_of') %}
    select
        {{ dbt.date_trunc('day', "cast('" ~ var('as_of') ~ "' as " ~ dbt.type_timestamp() ~ ")") }} as as_of
    {%- else %}
        select
            {{ dbt.dateadd('day', 1, dbt.date_trunc('day', 'max(last_event_ts)')) }} as as_of
        from last_events
    {%- endif %}

),

day_offsets as (

    {{ streamrec.day_offsets(var('snapshot_days')) }}

),

grid as (

    select
        cast({{ dbt.dateadd('day', '-day_offsets.day_offset', 'final_as_of.as_of') }} as {{ dbt.type_timestamp() }})
            as as_of,
        day_offsets.day_offset = 0 as is_serving
    from final_as_of
    cross join day_offsets
    where final_as_of.as_of is not null

)

select
    as_of,
    {{ streamrec.day_index('as_of') }} as day_index,
    is_serving
from grid
