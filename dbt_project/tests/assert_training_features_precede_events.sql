{#- No label leaks: every training row's features come from a snapshot at or before its event, and for a
    sample of rows the user's 30-day interaction count equals a recount from staging of the events in
    [as_of - 30 days, as_of) only, so neither the labelled interaction nor anything later is counted. -#}
with

training_examples as (

    select * from {{ ref('training_examples') }}

),

interactions as (

    select * from {{ ref('stg_raw__interactions') }}

),

late_snapshots as (

    select interaction_id, 'features from a snapshot after the event' as problem
    from training_examples
    where as_of > event_ts
        or {{ dbt.dateadd('day', 1, 'as_of') }} <= event_ts

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
select * from miscounted
