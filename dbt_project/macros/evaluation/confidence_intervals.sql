{# The two-sided 95% normal quantile used by every interval and sample-size rule in evaluation/online. #}
{% macro z_95() -%}
    1.959963984540054
{%- endmacro %}


{# The one-sided 80%-power normal quantile (z_0.80) of the sample-size rule. #}
{% macro z_power_80() -%}
    0.8416212335729143
{%- endmacro %}


{# `numerator / denominator` as a double, null when the denominator is 0 or null. #}
{% macro safe_divide(numerator, denominator) -%}
    case
        when {{ denominator }} > 0 then cast({{ numerator }} as double) / cast({{ denominator }} as double)
    end
{%- endmacro %}


{# Lower end of the Wilson score interval for `successes` out of `n` (null when n = 0). #}
{% macro wilson_low(successes, n) -%}
    {{ streamrec.wilson_bound(successes, n, '-') }}
{%- endmacro %}


{# Upper end of the Wilson score interval for `successes` out of `n` (null when n = 0). #}
{% macro wilson_high(successes, n) -%}
    {{ streamrec.wilson_bound(successes, n, '+') }}
{%- endmacro %}


{# One end of the Wilson score interval: `sign` is '-' for the lower end, '+' for the upper. #}
{% macro wilson_bound(successes, n, sign) -%}
    case
        when {{ n }} > 0 then
            (
                cast({{ successes }} as double) / {{ n }}
                + {{ streamrec.z_95() }} * {{ streamrec.z_95() }} / (2.0 * {{ n }})
                {{ sign }} {{ streamrec.z_95() }} * sqrt(
                    (cast({{ successes }} as double) / {{ n }}) * (1.0 - cast({{ successes }} as double) / {{ n }})
                        / {{ n }}
                    + {{ streamrec.z_95() }} * {{ streamrec.z_95() }} / (4.0 * {{ n }} * {{ n }})
                )
            ) / (1.0 + {{ streamrec.z_95() }} * {{ streamrec.z_95() }} / {{ n }})
    end
{%- endmacro %}


{# Welch standard error of a difference in means: sqrt(var1 / n1 + var0 / n0), null unless both n > 1. #}
{% macro welch_standard_error(var1, n1, var0, n0) -%}
    case
        when {{ n1 }} > 1 and {{ n0 }} > 1 then
            sqrt(coalesce({{ var1 }}, 0.0) / {{ n1 }} + coalesce({{ var0 }}, 0.0) / {{ n0 }})
    end
{%- endmacro %}


{# Per-group n to tell proportions p1 and p2 apart (two-sided 5%, 80% power), rounded up:
   n = (z_a * sqrt(2 * pbar * (1 - pbar)) + z_b * sqrt(p1 * (1 - p1) + p2 * (1 - p2)))^2 / (p1 - p2)^2. #}
{% macro two_proportion_sample_size(p1, p2) -%}
    case
        when abs(({{ p1 }}) - ({{ p2 }})) > 0 then
            ceil(
                power(
                    {{ streamrec.z_95() }} * sqrt(2.0 * (({{ p1 }}) + ({{ p2 }})) / 2.0 * (1.0 - (({{ p1 }}) + ({{ p2 }})) / 2.0))
                    + {{ streamrec.z_power_80() }} * sqrt(
                        ({{ p1 }}) * (1.0 - ({{ p1 }})) + ({{ p2 }}) * (1.0 - ({{ p2 }}))
                    ),
                    2
                ) / power(({{ p1 }}) - ({{ p2 }}), 2)
            )
    end
{%- endmacro %}


{# n to tell a proportion p1 from a known p0 (one-sample, two-sided 5%, 80% power), rounded up:
   n = (z_a * sqrt(p0 * (1 - p0)) + z_b * sqrt(p1 * (1 - p1)))^2 / (p0 - p1)^2. #}
{% macro one_proportion_sample_size(p0, p1) -%}
    case
        when abs(({{ p0 }}) - ({{ p1 }})) > 0 then
            ceil(
                power(
                    {{ streamrec.z_95() }} * sqrt(({{ p0 }}) * (1.0 - ({{ p0 }})))
                    + {{ streamrec.z_power_80() }} * sqrt(({{ p1 }}) * (1.0 - ({{ p1 }}))),
                    2
                ) / power(({{ p0 }}) - ({{ p1 }}), 2)
            )
    end
{%- endmacro %}
