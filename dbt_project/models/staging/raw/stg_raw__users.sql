with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select

        ----------  ids
        cast(user_id as {{ dbt.type_bigint() }}) as user_id,

        ----------  codes
        coalesce(language_code, 'unknown') as language_code,
        coalesce(country_code, 'unknown') as country_code,
        coalesce(age_band_code, 'unknown') as age_band_code,
        coalesce(gender_code, 'unknown') as gender_code,

        ----------  timestamps
        cast(signup_ts as {{ dbt.type_timestamp() }}) as signup_ts

    from source

)

select * from renamed
