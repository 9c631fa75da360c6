with

source as (

    select * from {{ source('raw', 'interactions') }}

),

renamed as (

    select

        ----------  ids
        cast(interaction_id as {{ dbt.type_bigint() }}) as interaction_id,
        cast(session_id as {{ dbt.type_bigint() }}) as session_id,
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,

        ----------  event
        event_type,
        cast(position as integer) as slot_position,

        ----------  numerics
        cast(coalesce(watch_seconds, 0) as double) as watch_seconds,
        cast(rating as double) as rating,

        ----------  timestamps
        cast(event_ts as {{ dbt.type_timestamp() }}) as event_ts

    from source

)

select * from renamed
