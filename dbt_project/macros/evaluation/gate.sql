{# The release gate's rule (docs/evaluation.md, "The scorecard and thresholds"; the canary applies the same
   rule in streamrec.batch.gate): the 95% interval decides, not the point estimate.
     INSUFFICIENT_DATA  no value, or sample_size below min_sample_size
     PASS               the whole interval clears the threshold (ci_low >= t for '>=', ci_high <= t for '<=')
     FAIL               the whole interval misses it (ci_high < t for '>=', ci_low > t for '<=')
     INCONCLUSIVE       otherwise, and whenever there is no interval #}
{% macro gate_status(value, ci_low, ci_high, threshold, direction, sample_size, min_sample_size) -%}
    case
        when {{ value }} is null then 'INSUFFICIENT_DATA'
        when coalesce({{ sample_size }}, 0) < {{ min_sample_size }} then 'INSUFFICIENT_DATA'
        when {{ ci_low }} is null or {{ ci_high }} is null then 'INCONCLUSIVE'
        when {{ direction }} = '>=' and {{ ci_low }} >= {{ threshold }} then 'PASS'
        when {{ direction }} = '>=' and {{ ci_high }} < {{ threshold }} then 'FAIL'
        when {{ direction }} = '<=' and {{ ci_high }} <= {{ threshold }} then 'PASS'
        when {{ direction }} = '<=' and {{ ci_low }} > {{ threshold }} then 'FAIL'
        else 'INCONCLUSIVE'
    end
{%- endmacro %}


{# For an INCONCLUSIVE row: about how many more sample units would decide it, from the observed spread.
   The half-width h on the threshold's side shrinks like 1/sqrt(n), so the interval stops straddling the
   threshold at n * (h / |value - threshold|)^2; minus the n already seen. Null when the row is decided,
   has no interval, or the estimate sits exactly on the threshold (no sample size decides that). #}
{% macro samples_to_decide(value, ci_low, ci_high, threshold, sample_size) -%}
    case
        when {{ value }} is null or {{ ci_low }} is null or {{ ci_high }} is null or {{ sample_size }} is null
            then null
        when {{ value }} = {{ threshold }} then null
        when {{ ci_low }} <= {{ threshold }} and {{ ci_high }} >= {{ threshold }} then
            cast(
                greatest(1, ceil(
                    {{ sample_size }} * power(
                        case
                            when {{ value }} > {{ threshold }} then {{ value }} - {{ ci_low }}
                            else {{ ci_high }} - {{ value }}
                        end / abs({{ value }} - {{ threshold }}),
                        2
                    )
                ) - {{ sample_size }}) as {{ dbt.type_bigint() }}
            )
    end
{%- endmacro %}
