{#
    One row per served request: its user, policy and version, its latency (the API logs the same
    latency on every slot of a request; the max is taken), the feature snapshot it read and how old its
    features were (one per request: the API serves a request from one snapshot), and whether its top 10 got a positive
    engagement (Hit@10 of the request).
#}
with

impressions as (

    select * from {{ ref('online_impression_outcomes') }}

),

final as (

    select
        request_id,
        max(user_id) as user_id,
        max(policy) as policy,
        max(model_version) as model_version,
        min(served_at) as served_at,
        max(latency_ms) as latency_ms,
        max(snapshot_id) as snapshot_id,
        max(feature_age_seconds) as feature_age_seconds,
        count(*) as slot_count,
        sum(is_engaged) as engaged_slot_count,
        max(case when slot_position <= 10 then is_engaged else 0 end) as is_hit_at_10
    from impressions
    group by request_id

)

select * from final
