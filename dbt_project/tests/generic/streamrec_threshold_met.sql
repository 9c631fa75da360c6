{# One row when the scorecard's `metric` FAILs its threshold (the whole 95% interval misses it), with a
   `diagnosis` naming the metric's area, value, interval and threshold (stored, so `streamrec build` prints it).
   PASS, INCONCLUSIVE and INSUFFICIENT_DATA pass here (INCONCLUSIVE is streamrec_threshold_decided's). Severity follows
   the var `evaluation_threshold_severity`: 'warn' in a plain `dbt build` (dbt_project.yml), 'error' in
   `streamrec build` (streamrec/batch/build.py), which fails on a FAIL but still publishes the scorecard. #}
{% test streamrec_threshold_met(model, metric) %}

{{ config(
    severity=var('evaluation_threshold_severity', 'warn'),
    store_failures=true,
) }}

{{ streamrec_scorecard_rows_with_status(model, metric, 'FAIL') }}

{% endtest %}


{# One row when the scorecard's `metric` is INCONCLUSIVE (its 95% interval straddles the threshold). A warning
   by default, so the build reports it and still publishes; an error with the var `evaluation_strict: true`
   (`streamrec build --strict`). The diagnosis names the area and how many more sample units would decide it. #}
{% test streamrec_threshold_decided(model, metric) %}

{{ config(
    severity='error' if var('evaluation_strict', false) else 'warn',
    store_failures=true,
) }}

{{ streamrec_scorecard_rows_with_status(model, metric, 'INCONCLUSIVE') }}

{% endtest %}

