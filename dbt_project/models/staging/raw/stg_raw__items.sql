with

source as (

    select * from {{ source('raw', 'items') }}

),

renamed as (

    select

        ----------  ids
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,
        cast(creator_id as {{ dbt.type_bigint() }}) as creator_id,

        ----------  text and codes
        title,
        coalesce(genre_code, 'unknown') as genre_code,

        ----------  numerics
        cast(length_seconds as double) as length_seconds,

        ----------  timestamps
        cast(published_ts as {{ dbt.type_timestamp() }}) as published_ts

    from source

)

select * from renamed
