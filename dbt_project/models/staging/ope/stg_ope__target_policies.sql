{#
    Candidate policies' probabilities at logged slots (raw.ope_target_policy), one row per (dataset,
    target_policy, request_id, slot_position, item_id). Optional: empty until a target is written.
#}
{%- set targets = streamrec.optional_source('ope', 'ope_target_policy') %}

{%- set columns = [
    ('dataset', dbt.type_string(), 'dataset'),
    ('target_policy', dbt.type_string(), 'target_policy'),
    ('request_id', dbt.type_string(), 'request_id'),
    ('position', 'integer', 'slot_position'),
    ('item_id', dbt.type_bigint(), 'item_id'),
    ('target_probability', 'double', 'target_probability'),
] %}

with

renamed as (

    {{ streamrec.optional_staging(targets, columns) }}

)

select * from renamed
