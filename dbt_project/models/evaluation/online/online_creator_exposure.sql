{#
    Position-weighted creator exposure per serving version, creator-group dimension and group (one row
    per model_version, group_dimension, group_value), over the slots the personalised policy served.
    Groups come from the latest features.item_features snapshot: creator language, new creator
    (joined < 90 days before as_of) and their intersection. Slots of items missing from that
    snapshot are left out.

    exposure_g       = sum over the group's slots of 1 / log2(1 + position)
    exposure_share_g = exposure_g / sum over all groups of exposure
    catalogue_share_g = items of the group / items in the snapshot
    normalised_share_g = exposure_share_g / catalogue_share_g   (1 = exposure in proportion to catalogue)

    exposure_share's 95% interval is the delta-method normal interval of a ratio of sums:
    se = sqrt(sum w_i^2 (1[g]_i - share)^2) / sum w_i (slots treated as independent). A group is judged
    only when the version served at least `slots_needed_count`: the n that tells a share of
    catalogue_share from threshold * catalogue_share (threshold = creator_exposure_equity's) at 5%
    two-sided and 80% power, n = (z_a sqrt(p0 q0) + z_b sqrt(p1 q1))^2 / (p0 - p1)^2.
#}
with

impressions as (

    select * from {{ ref('online_impression_outcomes') }}

),

item_features as (

    select * from {{ ref('item_features') }}

),

thresholds as (

    select * from {{ ref('evaluation_thresholds') }}

),

equity_threshold as (

    select max(threshold) as threshold
    from thresholds
    where metric = 'creator_exposure_equity'

),

latest_items as (

    select
        item_features.item_id,
        item_features.item_creator_language_code as creator_language,
        case when item_features.item_creator_is_new_flag then 'new' else 'established' end as creator_tenure
    from item_features
    where item_features.as_of = (select max(latest.as_of) from item_features as latest)

),

item_groups as (

    select
        item_id,
        'creator_language' as group_dimension,
        creator_language as group_value
    from latest_items
    union all
    select
        item_id,
        'creator_is_new' as group_dimension,
        creator_tenure as group_value
    from latest_items
    union all
    select
        item_id,
        'creator_language_x_is_new' as group_dimension,
        {{ dbt.concat(["creator_language", "' x '", "creator_tenure"]) }} as group_value
    from latest_items

),

catalogue as (

    select
        group_dimension,
        group_value,
        count(*) as catalogue_item_count,
        cast(count(*) as double) / (select count(*) from latest_items) as catalogue_share
    from item_groups
    group by group_dimension, group_value

),

slots as (

    select
        impressions.model_version,
        impressions.exposure_weight,
        item_groups.group_dimension,
        item_groups.group_value
    from impressions
    inner join item_groups on impressions.item_id = item_groups.item_id
    where impressions.policy = 'personalized'

),

slot_sums as (

    select
        model_version,
        group_dimension,
        group_value,
        count(*) as group_slot_count,
        sum(exposure_weight) as group_exposure,
        sum(exposure_weight * exposure_weight) as group_squared_exposure
    from slots
    group by model_version, group_dimension, group_value

),

version_totals as (

    select
        model_version,
        group_dimension,
        sum(group_slot_count) as version_slot_count,
        sum(group_exposure) as total_exposure,
        sum(group_squared_exposure) as total_squared_exposure
    from slot_sums
    group by model_version, group_dimension

),

-- every catalogue group of the dimension, exposed or not
group_exposure as (

    select
        version_totals.model_version,
        version_totals.group_dimension,
        catalogue.group_value,
        catalogue.catalogue_item_count,
        catalogue.catalogue_share,
        version_totals.version_slot_count,
        version_totals.total_exposure,
        version_totals.total_squared_exposure,
        coalesce(slot_sums.group_slot_count, 0) as group_slot_count,
        coalesce(slot_sums.group_exposure, 0.0) as group_exposure,
        coalesce(slot_sums.group_squared_exposure, 0.0) as group_squared_exposure,
        coalesce(slot_sums.group_exposure, 0.0) / version_totals.total_exposure as exposure_share
    from version_totals
    inner join catalogue on version_totals.group_dimension = catalogue.group_dimension
    left join slot_sums
        on version_totals.model_version = slot_sums.model_version
            and catalogue.group_dimension = slot_sums.group_dimension
            and catalogue.group_value = slot_sums.group_value

),

-- sum w^2 (1[g] - share)^2 splits into the group's slots and the rest: no pass over the slots per group
shares as (

    select
        group_exposure.*,
        sqrt(
            group_exposure.group_squared_exposure * power(1.0 - group_exposure.exposure_share, 2)
            + (group_exposure.total_squared_exposure - group_exposure.group_squared_exposure)
            * power(group_exposure.exposure_share, 2)
        ) / group_exposure.total_exposure as exposure_share_standard_error,
        {{ streamrec.one_proportion_sample_size(
            'catalogue_share', 'catalogue_share * equity_threshold.threshold'
        ) }} as slots_needed_count
    from group_exposure
    cross join equity_threshold

),

final as (

    select
        {{ dbt.concat(["model_version", "'|'", "group_dimension", "'|'", "group_value"]) }} as creator_exposure_id,
        model_version,
        group_dimension,
        group_value,
        catalogue_item_count,
        catalogue_share,
        group_slot_count,
        version_slot_count,
        group_exposure,
        exposure_share,
        exposure_share_standard_error,
        exposure_share / catalogue_share as normalised_share,
        case
            when exposure_share - {{ streamrec.z_95() }} * exposure_share_standard_error < 0 then 0.0
            else (exposure_share - {{ streamrec.z_95() }} * exposure_share_standard_error) / catalogue_share
        end as normalised_share_ci_low,
        (exposure_share + {{ streamrec.z_95() }} * exposure_share_standard_error) / catalogue_share
            as normalised_share_ci_high,
        cast(slots_needed_count as {{ dbt.type_bigint() }}) as slots_needed_count,
        coalesce(version_slot_count >= slots_needed_count, false) as is_judged
    from shares

)

select * from final
