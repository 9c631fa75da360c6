{#
    Imported logged bandit feedback (raw.ope_logged), one row per (dataset, request_id, slot_position).
    The source is optional: before any `streamrec load obd` it does not exist and this model is empty.
#}
{%- set logged = streamrec.optional_source('ope', 'ope_logged') %}

{%- set columns = [
    ('dataset', dbt.type_string(), 'dataset'),
    ('request_id', dbt.type_string(), 'request_id'),
    ('position', 'integer', 'slot_position'),
    ('item_id', dbt.type_bigint(), 'item_id'),
    ('propensity', 'double', 'propensity'),
    ('reward', 'double', 'reward'),
] %}

with

renamed as (

    {{ streamrec.optional_staging(logged, columns) }}

)

select * from renamed
