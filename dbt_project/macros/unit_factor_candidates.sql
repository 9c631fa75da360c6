{# Mean ratios (current / reference) that mean "wrong unit", with what each says, for the PSI diagnosis. #}
{% macro unit_factor_candidates(unit) -%}
    {%- set seconds_per = {'milliseconds': 0.001, 'seconds': 1.0, 'minutes': 60.0, 'hours': 3600.0, 'days': 86400.0} -%}
    {%- set candidates = [] -%}
    {%- if unit in seconds_per -%}
        {%- for other, size in seconds_per.items() if other != unit -%}
            {%- set ratio = seconds_per[unit] / size -%}
            {%- do candidates.append({
                'ratio': ratio,
                'label': streamrec.factor_label(ratio),
                'hint': 'looks like ' ~ other ~ ', contract says ' ~ unit,
            }) -%}
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
