with

source as (

    select * from {{ source('ops', 'events') }}

),

renamed as (

    select

        ----------  ids
        event_id,
        request_id,
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,

        ----------  event
        event_type,

        ----------  numerics
        cast(watch_seconds as double) as watch_seconds,

        ----------  timestamps
        cast(event_ts as {{ dbt.type_timestamp() }}) as event_ts,
        cast(received_at as {{ dbt.type_timestamp() }}) as received_at

    from source

)

select * from renamed
