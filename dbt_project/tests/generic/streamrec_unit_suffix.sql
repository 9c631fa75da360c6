{# One row if the column's name does not end in one of the declared unit suffixes (checked at compile time). #}
{% test streamrec_unit_suffix(model, column_name, suffixes) %}

{%- set ok = [] -%}
{%- for suffix in suffixes if column_name.endswith(suffix) -%}
    {%- do ok.append(suffix) -%}
{%- endfor %}
select
    '{{ column_name }}' as column_name,
    '{{ suffixes | join(" ") }}' as allowed_suffixes
from {{ model }}
where {{ 'false' if ok else 'true' }}
limit 1

{% endtest %}
