{# One row when the scorecard's `metric` FAILs its threshold, with a `diagnosis` naming metric, value and
   threshold (stored, so `streamrec build` prints it). PASS and INSUFFICIENT_DATA pass. Severity follows the
   var `evaluation_threshold_severity`: 'warn' in a plain `dbt build` (dbt_project.yml), 'error' in
   `streamrec build` (streamrec/batch/build.py), which fails on a FAIL but still publishes the scorecard. #}
{% test threshold_met(model, metric) %}

{{ config(
    severity=var('evaluation_threshold_severity', 'warn'),
    store_failures=true,
) }}

select
    metric,
    value,
    threshold,
    direction,
    sample_size,
    status,
    summary as diagnosis
from {{ model }}
where metric = '{{ metric }}'
    and status = 'FAIL'

{% endtest %}
