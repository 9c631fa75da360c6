{# Population stability of a numeric feature: the latest as_of snapshot's shares in the reference bins
   (reference.feature_distributions, most recent capture) against the reference shares,
   PSI = sum((cur - ref) * ln(cur / ref)). Warns above `warn_above`, fails above `fail_above`; no reference
   table or no reference rows for the feature passes. The failing row carries a `diagnosis` that names the
   unit the data looks like when the mean moved by a unit factor (x60, x3600, ...), and is stored
   (store_failures) so `streamrec build` can print it. #}
{% test streamrec_psi(model, column_name, unit, as_of_column='as_of', warn_above=0.1, fail_above=0.25) %}

{{ config(
    fail_calc='coalesce(max(psi_level), 0)',
    warn_if='>= 1',
    error_if='>= 2',
    store_failures=true,
) }}

{%- set reference = none -%}
{%- if execute -%}
    {%- set reference = adapter.get_relation(
        database=target.database, schema='reference', identifier='feature_distributions'
    ) -%}
{%- endif -%}

{%- if reference is none %}

select
    '{{ column_name }}' as feature_name,
    cast(null as double) as psi,
    cast(null as double) as mean_ratio,
    0 as psi_level,
    cast(null as {{ dbt.type_string() }}) as diagnosis
from {{ model }}
where 1 = 0

{%- else %}

{%- set candidates = streamrec.unit_factor_candidates(unit) %}

with

reference as (

    select * from {{ reference }}

),

latest_tag as (

    select max(tag) as tag
    from reference
    where captured_at = (select max(captured_at) from reference)

),

reference_bins as (

    select
        reference.bin_index,
        reference.lower_edge,
        reference.upper_edge,
        reference.share,
        reference.mean_value,
        reference.row_count
    from reference
    inner join latest_tag on reference.tag = latest_tag.tag
    where reference.feature_name = '{{ column_name }}'

),

current_values as (

    select cast({{ column_name }} as double) as feature_value
    from {{ model }}
    where {{ as_of_column }} = (select max({{ as_of_column }}) from {{ model }})
        and {{ column_name }} is not null

),

current_bins as (

    -- bins are [lower_edge, upper_edge); null edges are open
    select
        reference_bins.bin_index,
        count(current_values.feature_value) as row_count
    from reference_bins
    left join current_values
        on current_values.feature_value >= coalesce(reference_bins.lower_edge, -1e300)
        and current_values.feature_value < coalesce(reference_bins.upper_edge, 1e300)
    group by reference_bins.bin_index

),

shares as (

    select
        greatest(
            coalesce(cast(current_bins.row_count as double) / nullif(totals.total_rows, 0), 0.0), 0.0001
        ) as current_share,
        greatest(coalesce(reference_bins.share, 0.0), 0.0001) as reference_share
    from reference_bins
    inner join current_bins on reference_bins.bin_index = current_bins.bin_index
    cross join (select sum(row_count) as total_rows from current_bins) as totals

),

scored as (

    select
        '{{ column_name }}' as feature_name,
        (select sum((current_share - reference_share) * ln(current_share / reference_share)) from shares) as psi,
        (select avg(feature_value) from current_values)
            / nullif(
                (select sum(mean_value * row_count) / nullif(sum(row_count), 0) from reference_bins where row_count > 0),
                0
            ) as mean_ratio

),

diagnosed as (

    select
        feature_name,
        psi,
        mean_ratio,
        case
            when psi > {{ fail_above }} then 2
            when psi > {{ warn_above }} then 1
            else 0
        end as psi_level,
        case
            {%- for candidate in candidates %}
            when abs(mean_ratio / {{ candidate.ratio }} - 1) <= 0.15 then ' ≈ {{ candidate.label }}: {{ candidate.hint }}'
            {%- endfor %}
            else ''
        end as unit_hint
    from scored

)

select
    feature_name,
    psi,
    mean_ratio,
    psi_level,
    {{ dbt.concat([
        "feature_name",
        "': PSI '",
        "cast(round(psi, 2) as " ~ dbt.type_string() ~ ")",
        "', mean ratio '",
        "coalesce(cast(round(mean_ratio, 4) as " ~ dbt.type_string() ~ "), 'n/a')",
        "unit_hint",
        "case when psi_level = 2 then ' (fails above " ~ fail_above ~ ")' else ' (warns above " ~ warn_above ~ ")' end",
    ]) }} as diagnosis
from diagnosed
where psi_level > 0

{%- endif %}

{% endtest %}
