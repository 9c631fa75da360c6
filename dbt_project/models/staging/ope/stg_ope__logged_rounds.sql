{#
    Imported logged bandit feedback (raw.ope_logged), one row per (dataset, request_id, slot_position).
    The source is optional: before any `streamrec load obd` it does not exist and this model is empty.
#}
{%- set logged = streamrec.optional_source('ope', 'ope_logged') %}

with

{%- if logged is not none %}

source as (

    select * from {{ logged }}

),

renamed as (

    select

        ----------  ids
        cast(dataset as {{ dbt.type_string() }}) as dataset,
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        cast(position as integer) as slot_position,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,

        ----------  numerics
        cast(propensity as double) as propensity,
        cast(reward as double) as reward

    from source

)

{%- else %}

    renamed as (

        select
            cast(null as {{ dbt.type_string() }}) as dataset,
            cast(null as {{ dbt.type_string() }}) as request_id,
            cast(null as integer) as slot_position,
            cast(null as {{ dbt.type_bigint() }}) as item_id,
            cast(null as double) as propensity,
            cast(null as double) as reward
        where 1 = 0

    )

{%- endif %}

select * from renamed
