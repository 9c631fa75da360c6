"""`streamrec spark build`: the same dbt project with `--target spark` on the Parquet export of the raw schema.

Spark (dbt-spark, session method: pyspark in the dbt process, local mode unless profiles.yml says otherwise)
builds staging, intermediate, feature and training models with their contracts and tests; the ops and
evaluation models are DuckDB-only (disabled for target type spark in dbt_project.yml). The as_of is always
explicit, by default the one `streamrec spark export` recorded (the DuckDB build's serving as_of), so both
engines compute the same snapshots. Tables land as Parquet under $STREAMREC_HOME/spark-warehouse/<schema>.db/.

Unlike `streamrec build` this is not blue/green: dbt-spark replaces each table as it goes, so after a failed
build some tables may be new and others old. Nothing reads the Spark tables but `streamrec spark compare`
(and, on a cluster, the jobs you point at them), so check the exit code before using them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from streamrec.batch.build import FAILED_STATUSES, parse_as_of
from streamrec.batch.spark_export import export_dir, read_manifest
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import DBT_PROJECT_DIR, PROFILES_DIR, Settings, load_settings

SPARK_TARGET = "spark"
SPARK_CONF_DIR = Path(__file__).resolve().parent / "spark_conf"


def spark_warehouse_dir(settings: Settings) -> Path:
    """spark.sql.warehouse.dir of the local profile: managed tables are <schema>.db/<table>/ in it."""
    return settings.home / "spark-warehouse"


def spark_table_path(settings: Settings, schema: str, table: str) -> Path:
    """Where Spark keeps the Parquet files of a managed table of the local profile."""
    return spark_warehouse_dir(settings) / f"{schema}.db" / table


def spark_target_dir(settings: Settings) -> Path:
    """dbt's target/ for Spark builds of this home (apart from the DuckDB build's)."""
    return settings.home / "dbt" / "spark-target"


def spark_dbt_command(
    settings: Settings, args: list[str], as_of: str, select: str | None = None, exclude: str | None = None
) -> list[str]:
    """The dbt command line of a Spark build: target spark, per-home target/log dirs, as_of and export dir."""
    variables = {"as_of": as_of, "spark_export_dir": str(export_dir(settings))}
    command = [
        sys.executable,
        "-c",
        "from dbt.cli.main import cli; cli()",
        *args,
        "--target",
        SPARK_TARGET,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(PROFILES_DIR),
        "--target-path",
        str(spark_target_dir(settings)),
        "--log-path",
        str(settings.home / "dbt" / "spark-logs"),
        "--vars",
        json.dumps(variables),
    ]
    if select:
        command += ["--select", select, "--indirect-selection", "cautious"]
    if exclude:
        command += ["--exclude", exclude]
    return command


def _failures(settings: Settings) -> list[dict[str, Any]]:
    path = spark_target_dir(settings) / "run_results.json"
    if not path.exists():
        return []
    return [r for r in json.loads(path.read_text()).get("results", []) if r.get("status") in FAILED_STATUSES]


def stored_diagnoses(settings: Settings, failures: list[dict[str, Any]]) -> list[str]:
    """The `diagnosis` column of failing tests' stored rows (e.g. the PSI unit diagnosis), from their Parquet."""
    import duckdb

    diagnoses: list[str] = []
    con = duckdb.connect()
    try:
        for result in failures:
            relation = (result.get("relation_name") or "").replace("`", "")
            if "." not in relation:
                continue
            schema, table = relation.split(".")[-2:]
            path = spark_table_path(settings, schema, table)
            if not any(path.glob("*.parquet")):
                continue
            files = f"{path}/*.parquet"
            columns = [row[0] for row in con.sql(f"describe select * from read_parquet('{files}')").fetchall()]
            if "diagnosis" in columns:
                rows = con.sql(f"select diagnosis from read_parquet('{files}')").fetchall()
                diagnoses += [row[0] for row in rows if row[0]]
    finally:
        con.close()
    return diagnoses


def forget_moved_spark_state(settings: Settings) -> None:
    """Drop the local metastore and Spark tables when they were made for another home (a copied or moved one).

    The Derby metastore stores absolute table locations: in a copied STREAMREC_HOME it would still point at
    the original home's spark-warehouse, and a build would overwrite that home's tables. Both are derived
    state (every model is rebuilt, the sources re-registered from the export), so they are rebuilt from scratch.
    """
    marker = settings.home / "spark-metastore" / "home.txt"
    if marker.exists() and marker.read_text().strip() == str(settings.home):
        return
    shutil.rmtree(settings.home / "spark-metastore", ignore_errors=True)
    shutil.rmtree(spark_warehouse_dir(settings), ignore_errors=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{settings.home}\n")


def check_spark_installed() -> None:
    """Fail with what to install when the spark extra or Java is missing (before starting dbt)."""
    missing = [name for name in ("pyspark", "dbt.adapters.spark") if importlib.util.find_spec(name) is None]
    if missing:
        raise StreamRecError(
            f"{' and '.join(missing)} not installed: pip install -e '.[spark]' (or `make install-spark`); needs Java 17"
        )
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        raise StreamRecError("java not found (neither on PATH nor in JAVA_HOME): the Spark build needs Java 17")


def spark_build(
    settings: Settings,
    as_of: str | None = None,
    select: str | None = None,
    full_refresh: bool = False,
    exclude: str | None = None,
) -> str:
    """Run `dbt build --target spark` on the last export at its as_of (or `as_of`); return a summary line.

    The incremental per-day models overwrite only the day partitions of their lookback unless `full_refresh`.
    `exclude` is dbt's `--exclude` (e.g. `resource_type:test` to build the models alone).

    Raises StreamRecError naming the failing nodes and any PSI diagnosis.
    """
    check_spark_installed()
    record = read_manifest(settings)
    forget_moved_spark_state(settings)
    as_of = parse_as_of(as_of) if as_of is not None else parse_as_of(record["as_of"])
    results = spark_target_dir(settings) / "run_results.json"
    results.unlink(missing_ok=True)
    # SPARK_CONF_DIR: Spark's log4j2.properties without the per-statement session warning of dbt-spark
    # The Spark knobs come from the one settings object (environment, streamrec.toml, defaults).
    knobs = load_settings()
    env = {
        **os.environ,
        "STREAMREC_HOME": str(settings.home),
        "SPARK_CONF_DIR": str(SPARK_CONF_DIR),
        "STREAMREC_SPARK_MASTER": knobs.spark_master,
        "STREAMREC_SPARK_DRIVER_MEMORY": knobs.spark_driver_memory,
    }
    sys.stdout.flush()
    command = spark_dbt_command(
        settings,
        ["build", "--full-refresh"] if full_refresh else ["build"],
        as_of=as_of,
        select=select,
        exclude=exclude,
    )
    code = subprocess.run(command, env=env, check=False).returncode
    failures = _failures(settings)
    if code == 0 and not failures:
        return f"Spark build passed for as_of {as_of}: tables under {spark_warehouse_dir(settings)}"
    if not failures:
        raise StreamRecError(f"dbt build --target spark exited with code {code} before running any node (see above)")
    names = ", ".join(r["unique_id"].split(".")[2] for r in failures[:10])
    more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
    message = f"Spark build failed: {len(failures)} failing node(s): {names}{more}"
    diagnoses = stored_diagnoses(settings, failures)
    if diagnoses:
        message += "; " + "; ".join(diagnoses)
    raise StreamRecError(message)
