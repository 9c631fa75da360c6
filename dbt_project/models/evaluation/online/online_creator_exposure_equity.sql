{#
    Creator exposure equity per serving version and group dimension (one row per model_version,
    group_dimension): over the judged groups g (enough slots, see online_creator_exposure),
    equity = min_g normalised_share_g / max_g normalised_share_g, in [0, 1]; 1 = every group exposed
    in proportion to its catalogue share. Its 95% interval combines the groups' intervals by
    interval arithmetic (conservative): [min_g low_g / max_g high_g, min(1, min_g high_g / max_g low_g)].
    Null with fewer than two judged groups.
#}
with

exposure as (

    select * from {{ ref('online_creator_exposure') }}

),

summarised as (

    select
        model_version,
        group_dimension,
        max(version_slot_count) as slot_count,
        count(*) as group_count,
        sum(case when is_judged then 1 else 0 end) as judged_group_count,
        min(case when is_judged then normalised_share end) as min_normalised_share,
        max(case when is_judged then normalised_share end) as max_normalised_share,
        min(case when is_judged then normalised_share_ci_low end) as min_normalised_share_ci_low,
        max(case when is_judged then normalised_share_ci_high end) as max_normalised_share_ci_high,
        min(case when is_judged then normalised_share_ci_high end) as min_normalised_share_ci_high,
        max(case when is_judged then normalised_share_ci_low end) as max_normalised_share_ci_low,
        max(slots_needed_count) as slots_needed_for_all_groups
    from exposure
    group by model_version, group_dimension

),

final as (

    select
        {{ dbt.concat(["model_version", "'|'", "group_dimension"]) }} as exposure_equity_id,
        model_version,
        group_dimension,
        slot_count,
        group_count,
        judged_group_count,
        slots_needed_for_all_groups,
        case
            when judged_group_count >= 2 then
                {{ streamrec.safe_divide('min_normalised_share', 'max_normalised_share') }}
        end as exposure_equity,
        case
            when judged_group_count >= 2 then
                coalesce(
                    {{ streamrec.safe_divide('min_normalised_share_ci_low', 'max_normalised_share_ci_high') }}, 0.0
                )
        end as exposure_equity_ci_low,
        case
            when judged_group_count >= 2 then
                case
                    when max_normalised_share_ci_low <= 0 or min_normalised_share_ci_high >= max_normalised_share_ci_low
                        then 1.0
                    else min_normalised_share_ci_high / max_normalised_share_ci_low
                end
        end as exposure_equity_ci_high
    from summarised

)

select * from final
