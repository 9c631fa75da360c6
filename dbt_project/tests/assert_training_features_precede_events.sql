{#- No label leaks: every training row's features come from the latest grid snapshot at or before its event's
    day (never a later one, never an older one when a closer one exists), and for a
    sample of rows the user's 30-day interaction count equals a recount from staging of the events in
    [as_of - 30 days, as_of) only, so neither the labelled interaction nor anything later is counted. -#}
with

training_examples as (

    select * from {{ ref('training_examples') }}

),

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

as_of_days as (

    select * from {{ ref('int_as_of_days_generated') }}

),

late_snapshots as (

    select interaction_id, 'features from a snapshot after the event' as problem
    from training_examples
    where as_of > event_ts

),

stale_snapshots as (

    -- a grid snapshot after the row's as_of but still at or before the event's day was the one to use
    select training_examples.interaction_id, 'features from an older snapshot than the latest before the event' as problem
    from training_examples
    inner join as_of_days
        on as_of_days.as_of > training_examples.as_of
            and as_of_days.as_of <= training_examples.event_ts
    group by training_examples.interaction_id

),

sampled as (

    select interaction_id, user_id, as_of, user_interaction_count_30d_count
    from training_examples
    where mod(interaction_id, 17) = 0

),

recounted as (

    select
        sampled.interaction_id,
        max(sampled.user_interaction_count_30d_count) as stored_count,
        count(interactions.interaction_id) as expected_count
    from sampled
    left join interactions
        on interactions.user_id = sampled.user_id
        and interactions.event_ts >= {{ dbt.dateadd('day', -30, 'sampled.as_of') }}
        and interactions.event_ts < sampled.as_of
    group by sampled.interaction_id

),

miscounted as (

    select interaction_id, 'user_interaction_count_30d_count counts events outside [as_of - 30d, as_of)' as problem
    from recounted
    where stored_count != expected_count

)

select * from late_snapshots
union all
select * from stale_snapshots
union all
select * from miscounted
