with

source as (

    select * from {{ source('raw', 'sessions') }}

),

renamed as (

    select

        ----------  ids
        cast(session_id as {{ dbt.type_bigint() }}) as session_id,
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,

        ----------  codes
        device_code,

        ----------  numerics
        cast(duration_seconds as double) as duration_seconds,

        ----------  timestamps
        cast(started_ts as {{ dbt.type_timestamp() }}) as started_ts

    from source

)

select * from renamed
