{# Key combinations that occur more than once (a model's grain, e.g. user_id and as_of). #}
{% test streamrec_unique_combination(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as row_count
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
