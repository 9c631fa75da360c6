{# Uniform [0, 1) draw fixed by (key, replicate): the bootstrap's deterministic randomness (dispatched: engines
   hash differently, and a run must give the same interval every time). #}
{% macro bootstrap_uniform(key, replicate) -%}
    {{ return(adapter.dispatch('bootstrap_uniform', 'streamrec')(key, replicate)) }}
{%- endmacro %}

{% macro default__bootstrap_uniform(key, replicate) -%}
    cast(hash({{ key }}, {{ replicate }}) % 1000003 as double) / 1000003.0
{%- endmacro %}

{% macro spark__bootstrap_uniform(key, replicate) -%}
    cast(pmod(hash({{ key }}, {{ replicate }}), 1000003) as double) / 1000003.0
{%- endmacro %}


{# Poisson(1) weight from a uniform draw by its inverse CDF (the Poisson bootstrap: each row is drawn
   w ~ Poisson(1) times, which approximates resampling n rows with replacement and needs no n). #}
{% macro poisson_one_weight(u) -%}
    case
        when {{ u }} < 0.3678794412 then 0
        when {{ u }} < 0.7357588823 then 1
        when {{ u }} < 0.9196986029 then 2
        when {{ u }} < 0.9810118431 then 3
        when {{ u }} < 0.9963401532 then 4
        when {{ u }} < 0.9994058152 then 5
        else 6
    end
{%- endmacro %}


{# CTEs `chosen_tag`, `reference_bins` and `current_values` (feature_name, entity_key, feature_value) shared by
   online_training_serving_skew and its bootstrap: the reference the serving version was trained with and the
   latest snapshot's numeric feature values, keyed by the row's entity so a bootstrap resamples whole rows. #}
{% macro skew_input_ctes(reference, user_columns, item_columns) %}

reference as (

    select * from {{ reference }}

),

chosen_tag as (

    select coalesce(
        (select max(reference.tag) from reference inner join serving_version on reference.tag = serving_version.model_version),
        (select max(tag) from reference where captured_at = (select max(captured_at) from reference))
    ) as tag

),

reference_bins as (

    select reference.*
    from reference
    inner join chosen_tag on reference.tag = chosen_tag.tag

),

current_values as (

    {%- for column in user_columns %}
    select
        '{{ column }}' as feature_name,
        {{ dbt.concat(["'u'", "cast(user_id as " ~ dbt.type_string() ~ ")"]) }} as entity_key,
        cast({{ column }} as double) as feature_value
    from user_features
    where as_of = (select max(as_of) from user_features)
    union all
    {%- endfor %}
    {%- for column in item_columns %}
    select
        '{{ column }}' as feature_name,
        {{ dbt.concat(["'i'", "cast(item_id as " ~ dbt.type_string() ~ ")"]) }} as entity_key,
        cast({{ column }} as double) as feature_value
    from item_features
    where as_of = (select max(as_of) from item_features)
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

)

{% endmacro %}
