{# The scorecard rows of `metric` with `status`, and the one-line diagnosis `streamrec build` prints. #}
{% macro streamrec_scorecard_rows_with_status(model, metric, status) %}
select
    metric,
    area,
    value,
    threshold,
    direction,
    sample_size,
    status,
    {{ dbt.concat(["'scorecard " ~ status ~ " ('", "area", "'): '", "summary"]) }} as diagnosis
from {{ model }}
where metric = '{{ metric }}'
    and status = '{{ status }}'
{% endmacro %}
