{#
  Mean ratios (current / reference) that mean "wrong unit", with what each says, for the PSI diagnosis.

  For a time unit the candidates are every ratio between two time units (milliseconds, seconds, minutes,
  hours, days), not only those between the contract's unit and another: a raw column converted with the
  wrong factor upstream (seconds divided by 60 into an `_hours` feature gives 1/60) moves the mean by
  size(a) / size(b) whatever the contract's unit is. Ratios equal to contract unit / other unit say
  "looks like <other>"; the rest name the conversion. Equal ratios (hours/minutes = minutes/seconds)
  are listed once, the most direct reading first.
#}
{% macro unit_factor_candidates(unit) -%}
    {%- set seconds_per = {'milliseconds': 0.001, 'seconds': 1.0, 'minutes': 60.0, 'hours': 3600.0, 'days': 86400.0} -%}
    {%- set candidates = [] -%}
    {%- set labels = [] -%}
    {%- if unit in seconds_per -%}
        {%- for other, size in seconds_per.items() if other != unit -%}
            {%- set ratio = seconds_per[unit] / size -%}
            {%- do labels.append(streamrec.factor_label(ratio)) -%}
            {%- do candidates.append({
                'ratio': ratio,
                'label': streamrec.factor_label(ratio),
                'hint': 'looks like ' ~ other ~ ', contract says ' ~ unit,
            }) -%}
        {%- endfor -%}
        {%- for source, source_size in seconds_per.items() -%}
            {%- for target, target_size in seconds_per.items() if target != source -%}
                {#- a value in `source` units treated as `target` units: scaled by source / target -#}
                {%- set ratio = source_size / target_size -%}
                {%- set label = streamrec.factor_label(ratio) -%}
                {%- if label not in labels -%}
                    {%- do labels.append(label) -%}
                    {%- do candidates.append({
                        'ratio': ratio,
                        'label': label,
                        'hint': 'looks like an extra ' ~ source ~ '-to-' ~ target ~ ' conversion upstream, contract says ' ~ unit,
                    }) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- else -%}
        {%- for factor in [60.0, 3600.0, 1000.0, 86400.0] -%}
            {%- for ratio in [factor, 1.0 / factor] -%}
                {%- do candidates.append({
                    'ratio': ratio,
                    'label': streamrec.factor_label(ratio),
                    'hint': 'values look rescaled by a unit factor, contract says ' ~ unit,
                }) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(candidates) }}
{%- endmacro %}


{# "60" or "1/60" for a ratio. #}
{% macro factor_label(ratio) -%}
    {%- if ratio >= 1 -%}
        {{ return('%g' | format(ratio)) }}
    {%- else -%}
        {{ return('1/' ~ ('%g' | format(1.0 / ratio))) }}
    {%- endif -%}
{%- endmacro %}
