with

source as (

    select * from {{ source('ops', 'offline_recommendations') }}

),

renamed as (

    select

        ----------  ids
        version as model_version,
        policy,
        stage,
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,

        ----------  numerics
        cast(rank as integer) as recommendation_rank,
        cast(score as double) as recommendation_score

    from source

)

select * from renamed
