{#
    One row per served slot (request_id, slot_position) with what the user did with it: an event
    answers an impression when it carries the impression's request_id and item_id. `is_engaged`: a
    play, complete or like (positive engagement); `is_clicked`: a click or any positive engagement.
#}
with

impressions as (

    select * from {{ ref('stg_ops__impressions') }}

),

events as (

    select * from {{ ref('stg_ops__events') }}

),

attributed_events as (

    select
        request_id,
        item_id,
        max(case when event_type in {{ streamrec.positive_event_types() }} then 1 else 0 end) as is_engaged,
        max(case when event_type in {{ streamrec.click_event_types() }} then 1 else 0 end) as is_clicked,
        sum(coalesce(watch_seconds, 0.0)) as watch_seconds
    from events
    where request_id is not null
    group by request_id, item_id

),

final as (

    select
        impressions.request_id,
        impressions.slot_position,
        impressions.user_id,
        impressions.item_id,
        impressions.creator_id,
        impressions.policy,
        impressions.model_version,
        impressions.canary_phase,
        impressions.score,
        impressions.propensity,
        impressions.latency_ms,
        impressions.snapshot_id,
        impressions.feature_age_seconds,
        impressions.served_at,
        {{ streamrec.position_exposure('impressions.slot_position') }} as exposure_weight,
        coalesce(attributed_events.is_engaged, 0) as is_engaged,
        coalesce(attributed_events.is_clicked, 0) as is_clicked,
        coalesce(attributed_events.watch_seconds, 0.0) as watch_seconds
    from impressions
    left join attributed_events
        on impressions.request_id = attributed_events.request_id
            and impressions.item_id = attributed_events.item_id

)

select * from final
