"""Incremental Spark builds after appended days equal DuckDB's (its own file: `make test`'s loadfile
distribution runs it on the other worker than test_spark_parity.py's module build)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pyspark")
pytest.importorskip("dbt.adapters.spark")

from streamrec.batch.spark_build import spark_build, spark_target_dir
from streamrec.batch.spark_compare import compare
from streamrec.batch.spark_export import export
from streamrec.core.settings import Settings
from tests.warehouse_sql import update_warehouse

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_incremental_spark_build_after_appended_days_equals_duckdb(built_home: Path, tmp_path: Path) -> None:
    """History built in full on both engines, three days appended, both built incrementally: still equal.

    From a copy of the DuckDB build, not of `spark_home`: a copied home's Spark state is dropped before its
    first Spark build (the metastore holds the original's absolute paths), so the history's full Spark build
    is needed here either way, and this test need not wait for the module's.
    """
    from streamrec.batch.build import build
    from streamrec.batch.event_load import load_events
    from streamrec.batch.migrate import init_db
    from streamrec.lab.drop import cut_days_to_files

    settings = Settings(home=tmp_path / "home")
    shutil.copytree(built_home, settings.home)
    init_db(settings)  # the session home may predate ops.raw_loads
    features = "staging intermediate features training"
    cut_days_to_files(settings.raw_path, tmp_path / "days", days=3)
    # The reference was captured on the whole world; three days fewer shift a few features past the PSI
    # threshold, which is drift, not what this test is about.
    update_warehouse(settings, "delete from reference.feature_distributions returning 0")
    build(settings, select=features, full_refresh=True)  # raw was cut behind the loader's back
    export(settings)
    # the history's models only: its tests are the module build's (test_spark_parity.py), and the appended
    # build below runs every test on the incremental tables (half of a Spark build's time is its 176 tests)
    spark_build(settings, full_refresh=True, exclude="resource_type:test")
    load_events(settings, [str(tmp_path / "days")])
    build(settings, select=features)
    export(settings)
    spark_build(settings)
    results = json.loads((spark_target_dir(settings) / "run_results.json").read_text())["results"]
    per_day = {
        r["unique_id"].split(".")[-1]: "coalesce(max(day_index), 0)" in (r.get("compiled_code") or "")
        for r in results
        if "_aggregated_to_" in r["unique_id"] and r["unique_id"].startswith("model.")
    }
    assert len(per_day) == 3 and all(per_day.values()), per_day  # insert_overwrite of the lookback's days
    assert compare(settings).startswith("Spark and DuckDB agree")
