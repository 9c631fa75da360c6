{# A feature model's documented columns minus its keys, so downstream models follow the contract YAML. #}
{% macro feature_columns(model_name, key_columns) -%}
    {%- set columns = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == model_name -%}
            {%- for column in node.columns if column not in key_columns -%}
                {%- do columns.append(column) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- if columns | length == 0 -%}
            {{ exceptions.raise_compiler_error("model " ~ model_name ~ " documents no feature columns: run `streamrec contracts render`") }}
        {%- endif -%}
    {%- endif -%}
    {{ return(columns) }}
{%- endmacro %}

{# `relation.column` for each column, one per line: a select list that follows the contract's columns. #}
{% macro qualified_columns(relation, columns) -%}
    {%- for column in columns -%}
        {{ relation }}.{{ column }}{{ ",\n        " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
