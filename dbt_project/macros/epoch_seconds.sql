{# Seconds since 1970-01-01 of a timestamp expression, as a double (dispatched: engines name this differently). #}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'streamrec')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    cast({{ dbt.datediff("cast('1970-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")", ts, 'second') }} as double)
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    epoch({{ ts }})
{%- endmacro %}

{% macro spark__epoch_seconds(ts) -%}
    cast(unix_micros(cast({{ ts }} as timestamp)) as double) / 1000000.0
{%- endmacro %}


{# Whole days since 1970-01-01 (the day grid's index): a timestamp's day number. #}
{% macro day_index(ts) -%}
    cast(floor({{ streamrec.epoch_seconds(ts) }} / 86400.0) as {{ dbt.type_bigint() }})
{%- endmacro %}


{# Days between two timestamps as a double (fractional days). #}
{% macro days_between(start_ts, end_ts) -%}
    (({{ streamrec.epoch_seconds(end_ts) }} - {{ streamrec.epoch_seconds(start_ts) }}) / 86400.0)
{%- endmacro %}
