{#
    The 95% interval of the scorecard's training-serving skew (the worst feature's PSI), by a Poisson
    bootstrap over the latest snapshot's rows: in replicate b every user and item row is counted
    w ~ Poisson(1) times (a deterministic hash of the row's key and b, so reruns agree), each feature's
    PSI is recomputed against the same reference bins (shares floored at 0.0001, as in
    online_training_serving_skew), and the replicate's statistic is its worst feature's PSI. The
    interval is the 2.5th and 97.5th percentiles (order statistics) of the 200 replicates. The
    reference is held fixed: the interval is the snapshot's sampling noise. At most one row; none
    when the skew model is empty.
#}
{%- set replicates = 200 -%}
{%- set reference = none -%}
{%- if execute -%}
    {%- set reference = adapter.get_relation(
        database=target.database, schema='reference', identifier='feature_distributions'
    ) -%}
{%- endif -%}
{%- set user_columns = streamrec.numeric_feature_columns('user_features') -%}
{%- set item_columns = streamrec.numeric_feature_columns('item_features') -%}

-- noqa: ST03 below: those CTEs are read only when a reference has been captured (the lint compiles without one)
with

user_features as (  -- noqa: ST03

    select * from {{ ref('user_features') }}

),

item_features as (  -- noqa: ST03

    select * from {{ ref('item_features') }}

),

serving_version as (

    select * from {{ ref('online_serving_version') }}

),

skew as (  -- noqa: ST03

    select * from {{ ref('online_training_serving_skew') }}

),

{%- if reference is none or (user_columns | length) + (item_columns | length) == 0 %}

    final as (

        select
            cast(null as double) as max_psi_ci_low,
            cast(null as double) as max_psi_ci_high,
            cast(null as {{ dbt.type_bigint() }}) as replicate_count
        from serving_version
        where 1 = 0

    )

{%- else %}

{{ streamrec.skew_input_ctes(reference, user_columns, item_columns) }},

replicate_ids as (

    {%- for b in range(1, replicates + 1) %}
    select {{ b }} as replicate_id {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

-- each value's reference bin, once; the replicates only reweight
binned as (

    select
        current_values.feature_name,
        current_values.entity_key,
        reference_bins.bin_index
    from current_values
    inner join reference_bins
        on reference_bins.feature_name = current_values.feature_name
        and current_values.feature_value >= coalesce(reference_bins.lower_edge, -1e300)
        and current_values.feature_value < coalesce(reference_bins.upper_edge, 1e300)
    where current_values.feature_value is not null

),

entity_weights as (

    select
        entities.entity_key,
        replicate_ids.replicate_id,
        {{ streamrec.poisson_one_weight(streamrec.bootstrap_uniform('entities.entity_key', 'replicate_ids.replicate_id')) }}
            as weight
    from (select distinct entity_key from binned) as entities
    cross join replicate_ids

),

replicate_bins as (

    select
        entity_weights.replicate_id,
        binned.feature_name,
        binned.bin_index,
        sum(entity_weights.weight) as weighted_count
    from binned
    inner join entity_weights on entity_weights.entity_key = binned.entity_key
    group by entity_weights.replicate_id, binned.feature_name, binned.bin_index

),

replicate_totals as (

    select replicate_id, feature_name, sum(weighted_count) as total
    from replicate_bins
    group by replicate_id, feature_name

),

replicate_shares as (

    select
        replicate_ids.replicate_id,
        reference_bins.feature_name,
        greatest(
            coalesce(cast(replicate_bins.weighted_count as double) / nullif(replicate_totals.total, 0), 0.0), 0.0001
        ) as current_share,
        greatest(coalesce(reference_bins.share, 0.0), 0.0001) as reference_share
    from reference_bins
    cross join replicate_ids
    inner join replicate_totals
        on replicate_totals.replicate_id = replicate_ids.replicate_id
        and replicate_totals.feature_name = reference_bins.feature_name
    left join replicate_bins
        on replicate_bins.replicate_id = replicate_ids.replicate_id
        and replicate_bins.feature_name = reference_bins.feature_name
        and replicate_bins.bin_index = reference_bins.bin_index

),

replicate_psi as (

    select replicate_id, feature_name, sum((current_share - reference_share) * ln(current_share / reference_share)) as psi
    from replicate_shares
    group by replicate_id, feature_name

),

replicate_worst as (

    select
        replicate_id,
        max(psi) as max_psi,
        row_number() over (order by max(psi), replicate_id) as psi_order
    from replicate_psi
    group by replicate_id

),

final as (

    select
        max(case when psi_order = {{ (replicates * 0.025) | round(0, 'ceil') | int }} then max_psi end)
            as max_psi_ci_low,
        max(case when psi_order = {{ (replicates * 0.975) | round(0, 'ceil') | int + 1 }} then max_psi end)
            as max_psi_ci_high,
        cast(count(*) as {{ dbt.type_bigint() }}) as replicate_count
    from replicate_worst
    where exists (select 1 from skew)
    having count(*) > 0

)

{%- endif %}

select * from final
