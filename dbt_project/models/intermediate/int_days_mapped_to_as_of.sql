{#- Which days each as_of may read: one row per (as_of, day) with day < as_of, days_before = as_of day - day,
    for every day from `window_days` (30) days before the first as_of on. Feature windows are equi-joins on `day_index`
    filtered by days_before (1..7, 1..30): a fan-out of per-day aggregates to the grid's snapshots, which DuckDB
    runs as a hash join and aggregate (much faster than per-entity window frames). -#}
with

as_of_days as (

    select * from {{ ref('int_as_of_days_generated') }}

),

day_offsets as (

    {{ streamrec.day_offsets(var('snapshot_days') + var('history_days') + var('window_days')) }}

),

first_day as (

    select min(day_index) - {{ var('window_days') }} as day_index from as_of_days

),

mapped as (

    select
        as_of_days.as_of,
        day_offsets.day_offset as days_before,
        as_of_days.day_index - day_offsets.day_offset as day_index
    from as_of_days
    cross join day_offsets
    cross join first_day
    where day_offsets.day_offset >= 1
        and as_of_days.day_index - day_offsets.day_offset >= first_day.day_index

)

select
    as_of,
    cast(day_index as {{ dbt.type_bigint() }}) as day_index,
    cast(days_before as integer) as days_before
from mapped
