{# The first day an incremental per-day model recomputes: its newest stored day minus the lookback var. #}
{% macro incremental_from_day() -%}
    (select coalesce(max(day_index), 0) - {{ var('incremental_lookback_days') }} from {{ this }})
{%- endmacro %}
