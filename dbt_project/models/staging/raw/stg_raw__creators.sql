with

source as (

    select * from {{ source('raw', 'creators') }}

),

renamed as (

    select

        ----------  ids
        cast(creator_id as {{ dbt.type_bigint() }}) as creator_id,

        ----------  codes
        coalesce(language_code, 'unknown') as language_code,

        ----------  timestamps
        cast(created_ts as {{ dbt.type_timestamp() }}) as created_ts

    from source

)

select * from renamed
