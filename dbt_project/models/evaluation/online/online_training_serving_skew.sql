{#
    Training-serving skew per numeric feature (one row per feature_name): PSI of the latest
    features snapshot against the reference distribution the serving version was trained with,
    PSI = sum over reference bins of (cur - ref) * ln(cur / ref), shares floored at 0.0001, bins
    [lower_edge, upper_edge) as in the streamrec_psi test. Reference: the tag equal to the serving
    version (online_serving_version) when one was captured under it, else the most recent capture
    (what `streamrec train` copies into the bundle). The online features a bundle serves from are its
    own snapshot of the same tables, so this compares what serving uses with what training saw.
    Empty when reference.feature_distributions does not exist or no version serves yet. snapshot_as_of and
    reference_as_of (the day the reference was captured from, when recorded) say whether the comparison
    means anything: on the same day every PSI is 0 by construction (`streamrec report` says so).
#}
{%- set reference = none -%}
{%- if execute -%}
    {%- set reference = adapter.get_relation(
        database=target.database, schema='reference', identifier='feature_distributions'
    ) -%}
{%- endif -%}
{%- set has_reference_as_of = false -%}
{%- if reference is not none -%}
    {%- set has_reference_as_of = 'snapshot_as_of' in (adapter.get_columns_in_relation(reference) | map(attribute='name') | map('lower') | list) -%}
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

{%- if reference is none or (user_columns | length) + (item_columns | length) == 0 %}

    final as (

        select
            cast(null as {{ dbt.type_string() }}) as feature_name,
            cast(null as {{ dbt.type_string() }}) as reference_tag,
            cast(null as {{ dbt.type_bigint() }}) as snapshot_row_count,
            cast(null as timestamp) as snapshot_as_of,
            cast(null as timestamp) as reference_as_of,
            cast(null as double) as psi
        from serving_version
        where 1 = 0

    )

{%- else %}

{{ streamrec.skew_input_ctes(reference, user_columns, item_columns) }},

current_totals as (

    select feature_name, count(*) as row_count
    from current_values
    where feature_value is not null
    group by feature_name

),

current_bins as (

    select
        reference_bins.feature_name,
        reference_bins.bin_index,
        count(current_values.feature_value) as row_count
    from reference_bins
    left join current_values
        on current_values.feature_name = reference_bins.feature_name
        and current_values.feature_value >= coalesce(reference_bins.lower_edge, -1e300)
        and current_values.feature_value < coalesce(reference_bins.upper_edge, 1e300)
    group by reference_bins.feature_name, reference_bins.bin_index

),

shares as (

    select
        reference_bins.feature_name,
        reference_bins.tag,
        current_totals.row_count as snapshot_row_count,
        case
            when reference_bins.feature_name in ({{ "'" ~ (user_columns | join("', '")) ~ "'" }})
                then (select max(as_of) from user_features)
            else (select max(as_of) from item_features)
        end as snapshot_as_of,
        greatest(
            coalesce(cast(current_bins.row_count as double) / nullif(current_totals.row_count, 0), 0.0), 0.0001
        ) as current_share,
        greatest(coalesce(reference_bins.share, 0.0), 0.0001) as reference_share
    from reference_bins
    inner join current_bins
        on current_bins.feature_name = reference_bins.feature_name
        and current_bins.bin_index = reference_bins.bin_index
    inner join current_totals on current_totals.feature_name = reference_bins.feature_name

),

final as (

    select
        feature_name,
        max(tag) as reference_tag,
        max(snapshot_row_count) as snapshot_row_count,
        max(snapshot_as_of) as snapshot_as_of,
        {% if has_reference_as_of %}(select max(snapshot_as_of) from reference_bins){% else %}cast(null as timestamp){% endif %}
            as reference_as_of,
        sum((current_share - reference_share) * ln(current_share / reference_share)) as psi
    from shares
    -- no version serves yet: there is no training-serving pair to compare (drift is the PSI test's job)
    where exists (select 1 from serving_version)
    group by feature_name

)

{%- endif %}

select * from final
