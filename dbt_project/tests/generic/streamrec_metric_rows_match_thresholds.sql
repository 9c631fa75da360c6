{# Metrics in the thresholds seed without a scorecard row, or scorecard rows without a threshold: every
   configured threshold must be judged, and nothing judged without one. #}
{% test streamrec_metric_rows_match_thresholds(model, thresholds) %}

with

scorecard as (

    select metric from {{ model }}

),

configured as (

    select metric from {{ thresholds }}

)

select configured.metric, 'configured but not on the scorecard' as problem
from configured
left join scorecard on scorecard.metric = configured.metric
where scorecard.metric is null

union all

select scorecard.metric, 'on the scorecard without a threshold' as problem
from scorecard
left join configured on configured.metric = scorecard.metric
where configured.metric is null

{% endtest %}
