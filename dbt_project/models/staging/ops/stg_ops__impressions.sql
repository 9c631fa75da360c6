with

source as (

    select * from {{ source('ops', 'impressions') }}

),

renamed as (

    select

        ----------  ids
        request_id,
        cast(position as integer) as slot_position,
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,
        cast(item_id as {{ dbt.type_bigint() }}) as item_id,
        cast(creator_id as {{ dbt.type_bigint() }}) as creator_id,

        ----------  serving
        policy,
        model_version,
        canary_phase,
        snapshot_id,

        ----------  numerics
        cast(score as double) as score,
        cast(propensity as double) as propensity,
        cast(latency_ms as double) as latency_ms,
        cast(feature_age_seconds as double) as feature_age_seconds,

        ----------  timestamps
        cast(served_at as {{ dbt.type_timestamp() }}) as served_at

    from source

)

select * from renamed
