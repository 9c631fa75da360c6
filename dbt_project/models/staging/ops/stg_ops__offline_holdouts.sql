with

source as (

    select * from {{ source('ops', 'offline_holdout') }}

),

renamed as (

    select

        ----------  ids
        version as model_version,
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id

    from source

)

select * from renamed
