"""Batch jobs on the warehouse: loaders, the dbt build and its publish, reference capture, log ingest,
migrations, the canary decision, Spark export/build/compare and the report.

They sit on the base (`streamrec.core`) and the contracts and models; the API never imports them.
"""
