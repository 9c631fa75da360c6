with

source as (

    select * from {{ source('ops', 'promotions') }}

),

renamed as (

    select

        ----------  ids
        promotion_id,
        version as model_version,
        previous_version as previous_model_version,

        ----------  change
        action,
        promoted_by,
        reason,

        ----------  timestamps
        cast(promoted_at as {{ dbt.type_timestamp() }}) as promoted_at

    from source

)

select * from renamed
