{#
    Candidate policies' probabilities at logged slots (raw.ope_target_policy), one row per (dataset,
    target_policy, request_id, slot_position, item_id). Optional: empty until a target is written.
#}
{%- set targets = streamrec.optional_source('ope', 'ope_target_policy') %}

with

{%- if targets is not none %}

source as (

    select * from {{ targets }}

),

renamed as (

    select

        ----------  ids
        cast(dataset as {{ dbt.type_string() }}) as dataset,
        cast(target_policy as {{ dbt.type_string() }}) as target_policy,
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        cast(position as integer) as slot_position,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,

        ----------  numerics
        cast(target_probability as double) as target_probability

    from source

)

{%- else %}

    renamed as (

        select
            cast(null as {{ dbt.type_string() }}) as dataset,
            cast(null as {{ dbt.type_string() }}) as target_policy,
            cast(null as {{ dbt.type_string() }}) as request_id,
            cast(null as integer) as slot_position,
            cast(null as {{ dbt.type_bigint() }}) as item_id,
            cast(null as double) as target_probability
        where 1 = 0

    )

{%- endif %}

select * from renamed
