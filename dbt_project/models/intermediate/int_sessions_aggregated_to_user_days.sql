{#- One row per user and day with sessions: how many started and their total duration. -#}
with

sessions as (

    select * from {{ ref('stg_raw__sessions') }}
    {%- if is_incremental() %}
    -- only the days a late or new row may have changed (the lookback), recomputed whole
    where {{ streamrec.day_index('started_ts') }} >= {{ streamrec.incremental_from_day() }}
    {%- endif %}

),

aggregated as (

    select
        user_id,
        {{ streamrec.day_index('started_ts') }} as day_index,
        count(*) as session_count,
        sum(coalesce(duration_seconds, 0)) as session_seconds
    from sessions
    group by 1, 2

)

select
    user_id,
    day_index,
    cast(session_count as {{ dbt.type_bigint() }}) as session_count,
    cast(session_seconds as double) as session_seconds
from aggregated
