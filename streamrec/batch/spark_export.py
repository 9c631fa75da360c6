"""`streamrec spark export`: DuckDB's raw schema (and the PSI reference) as Parquet files Spark reads.

The Spark build (`streamrec spark build`, dbt target `spark`) reads the same source rows the DuckDB build
read: every raw table is copied with DuckDB's `COPY ... (FORMAT parquet)` from a read-only connection to
`$STREAMREC_HOME/spark/raw/<table>.parquet`, and `reference.feature_distributions` to
`spark/reference/feature_distributions.parquet` (empty, with its columns, when no reference was captured,
so the PSI test runs and passes as it does on DuckDB). `spark/export.json` records the row counts and the
as_of both builds must share. A new export is written beside the old one and swapped in with renames,
so a failed export never leaves half a snapshot behind.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from streamrec.core.errors import StreamRecError
from streamrec.core.raw_schema import RAW_TABLES
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, scalar, table_exists

REFERENCE_TABLE = "feature_distributions"
# reference.feature_distributions' columns (streamrec/reference.py), for the empty export
REFERENCE_COLUMNS = {
    "tag": "varchar",
    "feature_name": "varchar",
    "bin_index": "integer",
    "lower_edge": "double",
    "upper_edge": "double",
    "share": "double",
    "mean_value": "double",
    "row_count": "bigint",
    "captured_at": "timestamp",
    "snapshot_as_of": "timestamp",  # the feature day the reference was captured from (null before issue 13)
}


def export_dir(settings: Settings) -> Path:
    """Where the export lives: raw/, reference/ and export.json (the dbt var `spark_export_dir`)."""
    return settings.home / "spark"


def manifest_path(settings: Settings) -> Path:
    """The export's record: when, from which warehouse, row counts and the as_of both builds use."""
    return export_dir(settings) / "export.json"


def read_manifest(settings: Settings) -> dict[str, Any]:
    """The last export's record; StreamRecError when there is none."""
    path = manifest_path(settings)
    if not path.exists():
        raise StreamRecError(f"no Spark export at {export_dir(settings)}: run `streamrec spark export` first")
    return json.loads(path.read_text())


def _serving_as_of(con: duckdb.DuckDBPyConnection) -> str:
    """The DuckDB build's serving as_of, or (not built yet) the midnight after the last raw event."""
    if table_exists(con, "features", "user_features"):
        value = scalar(con, "select max(as_of) from features.user_features")
        if value is not None:
            return value.strftime("%Y-%m-%d %H:%M:%S")
    value = scalar(
        con,
        "select date_trunc('day', max(ts)) + interval 1 day from ("
        "select max(event_ts) as ts from raw.interactions union all select max(started_ts) from raw.sessions)",
    )
    if value is None:
        raise StreamRecError("raw.interactions and raw.sessions are empty: nothing to export")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    # DuckDB writes its naive TIMESTAMPs as Parquet timestamps without UTC adjustment; Spark reads them as
    # TIMESTAMP_NTZ and staging casts them to timestamps in the session time zone, UTC.
    con.execute(f"copy ({query}) to '{target}' (format parquet)").fetchall()


def export(settings: Settings) -> str:
    """Write raw.* and the PSI reference as Parquet for the Spark build; return a one-line summary."""
    final = export_dir(settings)
    staging = final.with_name("spark.exporting")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "raw").mkdir(parents=True)
    (staging / "reference").mkdir()
    counts: dict[str, int] = {}
    try:
        with connect(settings, read_only=True) as con:
            for table in RAW_TABLES:
                if not table_exists(con, "raw", table):
                    raise StreamRecError(f"no table raw.{table} in {settings.warehouse_path}: run `streamrec generate`")
                _copy(con, f"select * from raw.{table}", staging / "raw" / f"{table}.parquet")
                counts[f"raw.{table}"] = int(scalar(con, f"select count(*) from raw.{table}"))
            if table_exists(con, "reference", REFERENCE_TABLE):
                reference = f"select * from reference.{REFERENCE_TABLE}"
            else:
                reference = "select " + ", ".join(f"cast(null as {t}) as {c}" for c, t in REFERENCE_COLUMNS.items())
                reference += " where false"
            _copy(con, reference, staging / "reference" / f"{REFERENCE_TABLE}.parquet")
            counts[f"reference.{REFERENCE_TABLE}"] = int(scalar(con, f"select count(*) from ({reference})"))
            as_of = _serving_as_of(con)
        record = {
            "exported_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
            "warehouse": str(settings.warehouse_path),
            "as_of": as_of,
            "row_counts": counts,
        }
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n")
        # swap in: the Spark warehouse and metastore under spark/ are not touched (they live beside it)
        previous = final.with_name("spark.previous")
        shutil.rmtree(previous, ignore_errors=True)
        if final.exists():
            final.rename(previous)
        staging.rename(final)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    rows = counts["raw.interactions"]
    return f"exported {len(counts)} tables ({rows:,} interactions) to {final} for as_of {as_of}"
