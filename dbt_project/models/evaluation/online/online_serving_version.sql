{#
    The version the scorecard judges (at most one row): the version of the latest row of
    ops.promotions (promote or rollback), else, before any promotion, the version that logged the
    most impressions.
#}
with

promotions as (

    select * from {{ ref('stg_ops__promotions') }}

),

impressions as (

    select * from {{ ref('online_impression_outcomes') }}

),

latest_promotion as (

    select
        model_version,
        'latest promotion' as chosen_by,
        1 as priority,
        row_number() over (order by promoted_at desc, promotion_id desc) as position_in_priority
    from promotions

),

busiest_version as (

    select
        model_version,
        'most impressions (no promotion yet)' as chosen_by,
        2 as priority,
        row_number() over (order by count(*) desc, model_version) as position_in_priority
    from impressions
    group by model_version

),

candidates as (

    select
        model_version,
        chosen_by,
        priority
    from latest_promotion
    where position_in_priority = 1
    union all
    select
        model_version,
        chosen_by,
        priority
    from busiest_version
    where position_in_priority = 1

),

final as (

    select
        candidates.model_version,
        candidates.chosen_by
    from candidates
    where candidates.priority = (select min(first_choice.priority) from candidates as first_choice)

)

select * from final
