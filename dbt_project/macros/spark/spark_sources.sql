{# The raw sources (and the PSI reference) on Spark: external Parquet tables over the files
   `streamrec spark export` wrote from DuckDB's raw schema, re-created at the start of every run (an
   on-run-start hook) so a new export is always what the run reads. On DuckDB raw is the attached raw
   file (profiles.yml) and this does nothing. The directory is the var `spark_export_dir`, by default
   $STREAMREC_HOME/spark (files raw/<table>.parquet and reference/feature_distributions.parquet). #}
{% macro register_spark_sources() -%}
    {{ return(adapter.dispatch('register_spark_sources', 'streamrec')()) }}
{%- endmacro %}

{% macro default__register_spark_sources() -%}
{%- endmacro %}

{% macro spark__register_spark_sources() -%}
    {%- if execute -%}
        {%- set export_dir = var('spark_export_dir', none) or ((env_var('STREAMREC_HOME', '') or '.streamrec') ~ '/spark') -%}
        {%- set tables = [] -%}
        {%- for name in ['users', 'creators', 'items', 'sessions', 'interactions'] -%}
            {%- do tables.append(('raw', name, export_dir ~ '/raw/' ~ name ~ '.parquet')) -%}
        {%- endfor -%}
        {%- do tables.append(('reference', 'feature_distributions', export_dir ~ '/reference/feature_distributions.parquet')) -%}
        {#- only missing databases: `create database if not exists` makes the Hive metastore log an error -#}
        {%- set existing = run_query('show databases').columns[0].values() | map('lower') | list -%}
        {%- for schema in ['raw', 'reference'] if schema not in existing -%}
            {%- do run_query('create database ' ~ schema) -%}
        {%- endfor -%}
        {%- for schema, name, location in tables -%}
            {%- do run_query('drop table if exists ' ~ schema ~ '.' ~ name) -%}
            {%- do run_query('create table ' ~ schema ~ '.' ~ name ~ " using parquet location '" ~ location ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
