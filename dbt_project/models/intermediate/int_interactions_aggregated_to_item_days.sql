{#- One row per item and day with activity: the day's plays, completes, likes, skips and watch time of plays. -#}
with

interactions as (

    select * from {{ ref('stg_raw__interactions') }}
    {%- if is_incremental() %}
    -- only the days a late or new row may have changed (the lookback), recomputed whole
    where {{ streamrec.day_index('event_ts') }} >= {{ streamrec.incremental_from_day() }}
    {%- endif %}

),

aggregated as (

    select
        item_id,
        {{ streamrec.day_index('event_ts') }} as day_index,
        sum(case when event_type = 'play' then 1 else 0 end) as play_count,
        sum(case when event_type = 'complete' then 1 else 0 end) as complete_count,
        sum(case when event_type = 'like' then 1 else 0 end) as like_count,
        sum(case when event_type = 'skip' then 1 else 0 end) as skip_count,
        sum(case when event_type = 'play' then watch_seconds else 0 end) as play_watch_seconds
    from interactions
    group by 1, 2

)

select
    item_id,
    day_index,
    cast(play_count as {{ dbt.type_bigint() }}) as play_count,
    cast(complete_count as {{ dbt.type_bigint() }}) as complete_count,
    cast(like_count as {{ dbt.type_bigint() }}) as like_count,
    cast(skip_count as {{ dbt.type_bigint() }}) as skip_count,
    cast(play_watch_seconds as double) as play_watch_seconds
from aggregated
