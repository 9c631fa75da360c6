{#
    Logged bandit feedback for off-policy evaluation, one row per (dataset, request_id, slot_position):
    the item the logging policy put in the slot, its logging propensity and the reward.
    - dataset 'ops': the API's own log (ops.impressions with a propensity; reward = the slot got a
      play, complete or like).
    - every dataset in raw.ope_logged (Open Bandit Dataset imports by `streamrec load obd`, synthetic
      logs from streamrec.ope_synthetic) when that table exists.
    Each slot is one bandit round (the position-based, independent-slot view Open Bandit uses).
#}

{%- set logged_round_columns = ['dataset', 'request_id', 'slot_position', 'item_id', 'propensity', 'reward'] %}

with

impressions as (

    select * from {{ ref('online_impression_outcomes') }}

),

api_rounds as (

    select
        'ops' as dataset,
        request_id,
        slot_position,
        item_id,
        propensity,
        cast(is_engaged as double) as reward
    from impressions
    where propensity is not null

),

imported_rounds as (

    select {{ logged_round_columns | join(', ') }}
    from {{ ref('stg_ope__logged_rounds') }}

),

final as (

    select {{ logged_round_columns | join(', ') }} from api_rounds
    union all
    select {{ logged_round_columns | join(', ') }} from imported_rounds

)

select * from final
