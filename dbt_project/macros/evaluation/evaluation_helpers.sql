{# Position-discounted exposure of a 1-based slot: 1 / log2(1 + position) (1 at the top, 0.5 at slot 3). #}
{% macro position_exposure(position) -%}
    (ln(2.0) / ln(1.0 + cast({{ position }} as double)))
{%- endmacro %}


{# Every interaction type in raw.interactions (streamrec.core.event_types.INTERACTION_EVENT_TYPES). #}
{% macro interaction_event_types() -%}
    ('play', 'complete', 'like', 'skip')
{%- endmacro %}


{# Event types that count as positive engagement with a served item (the training label's positives). #}
{% macro positive_event_types() -%}
    ('play', 'complete', 'like')
{%- endmacro %}


{# Event types that count as a click-through (a click or any positive engagement; a skip is not). #}
{% macro click_event_types() -%}
    ('click', 'play', 'complete', 'like')
{%- endmacro %}


{# The relation of a source table, or none when it does not exist yet (optional inputs such as raw.ope_logged). #}
{% macro optional_source(source_name, table_name) -%}
    {%- set declared = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=declared.database, schema=declared.schema, identifier=declared.identifier)) }}
{%- endmacro %}


{# The numeric (double or bigint) feature columns a feature model documents: those with a PSI reference. #}
{% macro numeric_feature_columns(model_name) -%}
    {%- set columns = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == model_name -%}
            {%- for name, column in node.columns.items()
                if name not in ('user_id', 'item_id', 'creator_id', 'as_of')
                and (column.data_type or '') | lower in ('double', 'bigint', 'integer', 'float') -%}
                {%- do columns.append(name) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(columns) }}
{%- endmacro %}


{# The select of an optional source's staging model: each (source column, type, name) cast from `relation`, or,
   when the source table does not exist (`relation` is none), the same typed columns with no rows. One column
   list serves both, so the empty model always has the real model's columns and types. #}
{% macro optional_staging(relation, columns) -%}
    select
    {%- for source_column, data_type, name in columns %}
        cast({{ source_column if relation is not none else 'null' }} as {{ data_type }}) as {{ name }}
        {%- if not loop.last %},{% endif %}
    {%- endfor %}
    {%- if relation is not none %}
    from {{ relation }}
    {%- else %}
    where 1 = 0
    {%- endif %}
{%- endmacro %}
