"""The dbt feature models on Spark (dbt-spark session, pyspark local mode) equal the DuckDB build's.

Needs Java 17 and the `spark` extra (`make install-spark`, then `make test` runs this folder first); skipped
when pyspark or dbt-spark is not installed. One small dataset (tests/conftest.py SMALL: 300 users, 200 items,
40 days) is built on DuckDB with a captured PSI reference, exported to Parquet and built on Spark once per
module; the tests compare, tamper with copies, and break the unit of session durations in the export.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytest.importorskip("pyspark")
pytest.importorskip("dbt.adapters.spark")

from streamrec.batch.spark_build import (
    forget_moved_spark_state,
    spark_build,
    spark_table_path,
    spark_target_dir,
    spark_warehouse_dir,
)
from streamrec.batch.spark_compare import compare
from streamrec.batch.spark_export import export, export_dir, read_manifest
from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse
from tests.paths import REPO_ROOT
from tests.warehouse_sql import update_warehouse

pytestmark = [pytest.mark.spark, pytest.mark.slow]
# `make test-spark` runs tests/spark on two xdist workers (--dist loadgroup): the tests of the module's Spark
# build (one build of `spark_home`) and the minutes test share one worker; the incremental test
# (test_spark_incremental.py, two Spark builds of its own) runs beside them. `make test` (--dist loadfile)
# gives each file to one worker, first, for the same reason.
ON_FIRST_WORKER = pytest.mark.xdist_group("spark_home_and_minutes")

FEATURE = "user_avg_session_length_7d_seconds"


def _duckdb_rows(settings: Settings, sql: str) -> list[tuple]:
    con = open_warehouse(settings, read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def spark_home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small DuckDB build (with reference) exported and built on Spark (do not modify)."""
    home = tmp_path_factory.mktemp("spark") / "home"
    shutil.copytree(built_home, home)
    settings = Settings(home=home)
    export(settings)
    spark_build(settings)
    return home


@pytest.fixture
def spark_copy(spark_home: Path, tmp_path: Path) -> Settings:
    """A modifiable copy of the Spark-built home."""
    target = tmp_path / "home"
    shutil.copytree(spark_home, target)
    return Settings(home=target)


@ON_FIRST_WORKER
def test_export_writes_every_raw_table_the_reference_and_the_duckdb_as_of(spark_home: Path) -> None:
    settings = Settings(home=spark_home)
    record = read_manifest(settings)
    (duck_as_of,) = _duckdb_rows(settings, "select max(as_of) from features.user_features")[0]
    assert record["as_of"] == duck_as_of.strftime("%Y-%m-%d %H:%M:%S")
    con = duckdb.connect()
    for table in ("users", "creators", "items", "sessions", "interactions"):
        path = export_dir(settings) / "raw" / f"{table}.parquet"
        (exported,) = con.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0]
        assert (
            exported
            == record["row_counts"][f"raw.{table}"]
            == _duckdb_rows(settings, f"select count(*) from raw.{table}")[0][0]
        )
    assert record["row_counts"]["reference.feature_distributions"] > 0  # the PSI test has something to judge


@ON_FIRST_WORKER
def test_spark_build_runs_every_feature_model_and_test_and_no_duckdb_only_model(spark_home: Path) -> None:
    results = json.loads((spark_target_dir(Settings(home=spark_home)) / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert set(statuses.values()) <= {"success", "pass"}, {
        k: v for k, v in statuses.items() if v not in {"success", "pass"}
    }
    names = {uid.split(".")[2] for uid in statuses}
    assert {"user_features", "item_features", "training_examples", "assert_training_features_precede_events"} <= names
    psi = [name for name in names if name.startswith("psi_")]
    assert len(psi) == len(load_contract().numeric())
    assert not [uid for uid in statuses if ".evaluation." in uid or "stg_ops__" in uid]


@ON_FIRST_WORKER
def test_spark_features_equal_duckdb_features(spark_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamrec", "spark", "compare"],
        cwd=REPO_ROOT,
        env={**os.environ, "STREAMREC_HOME": str(spark_home)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Spark and DuckDB agree" in result.stdout
    settings = Settings(home=spark_home)
    for table in ("user_features", "item_features", "training_examples"):
        (rows,) = _duckdb_rows(settings, f"select count(*) from features.{table}")[0]
        assert rows > 0
        assert f"features.{table} {rows:,} rows" in result.stdout


@ON_FIRST_WORKER
def test_a_changed_feature_value_is_reported_with_table_key_and_column(spark_copy: Settings) -> None:
    user_id, as_of = _duckdb_rows(
        spark_copy, "select min(user_id), max(as_of) from features.user_features where user_tenure_days > 1"
    )[0]
    changed = update_warehouse(
        spark_copy,
        "update features.user_features set user_tenure_days = user_tenure_days * (1 + 1e-6) "
        f"where user_id = {user_id} and as_of = '{as_of}'",
    )
    assert changed == 1
    with pytest.raises(StreamRecError) as failure:
        compare(spark_copy)
    message = str(failure.value)
    assert "features.user_features" in message
    assert f"user_id={user_id}, as_of={as_of}" in message
    assert "column user_tenure_days" in message and "1 of" in message


@ON_FIRST_WORKER
def test_a_null_on_one_side_is_reported_with_table_key_and_column(spark_copy: Settings) -> None:
    (item_id,) = _duckdb_rows(spark_copy, "select min(item_id) from features.item_features")[0]
    update_warehouse(spark_copy, f"update features.item_features set item_genre_code = null where item_id = {item_id}")
    with pytest.raises(
        StreamRecError, match=rf"features\.item_features: column item_genre_code differs at item_id={item_id},"
    ):
        compare(spark_copy)


@ON_FIRST_WORKER
def test_a_row_missing_on_one_side_is_reported_with_its_key(spark_copy: Settings) -> None:
    (interaction_id,) = _duckdb_rows(spark_copy, "select max(interaction_id) from features.training_examples")[0]
    update_warehouse(spark_copy, f"delete from features.training_examples where interaction_id = {interaction_id}")
    with pytest.raises(StreamRecError) as failure:
        compare(spark_copy)
    message = str(failure.value)
    assert f"features.training_examples: row interaction_id={interaction_id} is on Spark but not on DuckDB" in message


@ON_FIRST_WORKER
def test_compare_without_a_spark_build_names_the_missing_table(spark_copy: Settings) -> None:
    shutil.rmtree(spark_table_path(spark_copy, "features", "item_features"))
    with pytest.raises(StreamRecError, match=r"no Spark table features\.item_features .*streamrec spark build"):
        compare(spark_copy)


@ON_FIRST_WORKER
def test_a_copied_home_drops_spark_state_that_points_at_the_original(spark_home: Path, spark_copy: Settings) -> None:
    # the Derby metastore holds absolute locations: a build in the copy must not write into the original
    original = Settings(home=spark_home)
    forget_moved_spark_state(original)
    assert spark_table_path(original, "features", "user_features").exists()
    forget_moved_spark_state(spark_copy)
    assert not spark_warehouse_dir(spark_copy).exists()
    assert (spark_copy.home / "spark-metastore" / "home.txt").read_text().strip() == str(spark_copy.home)
    assert not (spark_copy.home / "spark-metastore" / "metastore_db").exists()


@ON_FIRST_WORKER
def test_session_minutes_in_the_export_fail_the_spark_build_on_the_psi_test(built_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    settings = Settings(home=home)
    export(settings)
    sessions = export_dir(settings) / "raw" / "sessions.parquet"
    minutes = tmp_path / "sessions_minutes.parquet"
    con = duckdb.connect()
    con.execute(
        f"copy (select * replace (duration_seconds / 60.0 as duration_seconds) from read_parquet('{sessions}')) "
        f"to '{minutes}' (format parquet)"
    ).fetchall()
    con.close()
    shutil.move(minutes, sessions)

    with pytest.raises(StreamRecError) as failure:
        spark_build(settings, select="+user_features")
    message = str(failure.value)
    assert f"psi_{FEATURE}" in message
    assert f"{FEATURE}: PSI" in message
    assert "≈ 1/60: looks like minutes, contract says seconds" in message
