{# Distinct-member windows without a distinct count per snapshot: a member's play on day d keeps it counted
   for the span_days = min(next play day - d, window_days) days after d, so "distinct members in the
   window_days before as_of" = sum of member_count over rows with 1 <= as_of day - d <= span_days.
   Rows are grouped by (entity, day, span) so the fan-out to snapshots stays small. #}
{% macro play_spans(play_days, entity_column, member_column) -%}
with_next as (

    select
        {{ entity_column }},
        day_index,
        lead(day_index) over (
            partition by {{ entity_column }}, {{ member_column }}
            order by day_index
        ) as next_day_index
    from {{ play_days }}

),

spans as (

    select
        {{ entity_column }},
        day_index,
        case
            when next_day_index is not null and next_day_index - day_index < {{ var('window_days') }}
                then next_day_index - day_index
            else {{ var('window_days') }}
        end as span_days
    from with_next

)

select
    {{ entity_column }},
    cast(day_index as {{ dbt.type_bigint() }}) as day_index,
    cast(span_days as integer) as span_days,
    cast(count(*) as {{ dbt.type_bigint() }}) as member_count
from spans
group by 1, 2, 3
{%- endmacro %}
