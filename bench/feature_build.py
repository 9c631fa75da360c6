"""Feature build benchmark: generate, `streamrec build`, and dbt's overhead over the same SQL run directly.

For each size (interactions) it makes a fresh STREAMREC_HOME, runs `streamrec init` + `generate`, then
  1. `streamrec build` (copy, `dbt build` with every model, unit and data test, publish),
  2. `dbt run` (models only) on a fresh copy of the generated warehouse, and
  3. the compiled SQL of the same models (manifest.json, dependency order) executed directly with
     DuckDB on another fresh copy,
and writes the "Feature build" section of docs/benchmarks.md.

    .venv/bin/python bench/feature_build.py                      # 1M and 10M interactions
    .venv/bin/python bench/feature_build.py --sizes 1000000      # 1M only
    .venv/bin/python bench/feature_build.py --engine spark       # the same on Spark (needs the spark extra)
    .venv/bin/python bench/feature_build.py --daily --sizes 10000000   # issue 16: load, append a day, publish

With `--daily` each size's world loses its last day to a drop directory (`streamrec.lab.drop`), the rest is
exported to Parquet and loaded into a fresh warehouse with `streamrec load events` (rows/s), built in full,
then the day is appended and the warehouse built again; the copy `streamrec build` makes before it builds is
timed on its own. That writes the "Daily operation" section.

With `--engine spark` each size is built on DuckDB (`streamrec build`, for the as_of and the figures side by
side), exported to Parquet (`streamrec spark export`), built with `dbt build --target spark` (pyspark local
mode, every model and test) and compared row by row (`streamrec spark compare`); that writes the
"Feature build on Spark" section instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb

from streamrec.batch.build import build, dbt_command, dbt_target_dir
from streamrec.batch.migrate import init_db
from streamrec.core.settings import Settings
from streamrec.lab.generate import generate

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Feature build"
MARK_START, MARK_END = "<!-- feature-build:start -->", "<!-- feature-build:end -->"
SPARK_SECTION = "## Feature build on Spark"
SPARK_MARKS = ("<!-- feature-build-spark:start -->", "<!-- feature-build-spark:end -->")
DAILY_SECTION = "## Daily operation: load, append a day, publish (issue 16)"
DAILY_MARKS = ("<!-- daily:start -->", "<!-- daily:end -->")
# The feature lineage: raw -> staging -> intermediate -> features -> training (not evaluation/ops models).
FEATURE_MODELS = "+training_examples"


@dataclass
class Result:
    """Wall times (seconds) for one data size."""

    interactions: int
    users: int
    items: int
    generate_s: float
    streamrec_build_s: float
    dbt_run_s: float
    raw_sql_s: float
    model_timings: dict[str, float]
    load_before: float
    load_after: float

    @property
    def overhead(self) -> float:
        """dbt run wall time over the same SQL run directly (1.0 = no overhead)."""
        return self.dbt_run_s / self.raw_sql_s


def _models_in_order(manifest: dict) -> list[dict]:
    """Model nodes of the manifest in dependency order."""
    models = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    graph = {uid: [d for d in node["depends_on"]["nodes"] if d in models] for uid, node in models.items()}
    return [models[uid] for uid in TopologicalSorter(graph).static_order()]


def run_raw_sql(warehouse: Path, raw: Path, manifest: dict, ran: set[str]) -> float:
    """Create the models dbt ran (by name) from their compiled SQL, directly in DuckDB; return wall seconds."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(f"attach '{raw}' as raw (read_only)")  # as the profile does (ADR 0008)
        start = time.perf_counter()
        for node in _models_in_order(manifest):
            if node["name"] not in ran:
                continue
            kind = "view" if node["config"]["materialized"] == "view" else "table"
            con.execute(f"create schema if not exists {node['schema']}")
            con.execute(f"create or replace {kind} {node['schema']}.{node['alias']} as {node['compiled_code']}")
        return time.perf_counter() - start
    finally:
        con.close()


def bench_size(root: Path, interactions: int, days: int) -> Result:
    """Generate one size and time the three ways of building its features."""
    users, items = max(interactions // 40, 100), max(interactions // 500, 100)
    home = root / f"home_{interactions}"
    settings = Settings(home=home).ensure()
    os.environ["STREAMREC_HOME"] = str(home)
    init_db(settings)
    start = time.perf_counter()
    generate(settings, users=users, items=items, days=days, seed=7, interactions=interactions)
    generate_s = time.perf_counter() - start
    pristine = root / f"pristine_{interactions}" / "warehouse.duckdb"
    pristine.parent.mkdir()
    shutil.copyfile(settings.warehouse_path, pristine)

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    build(settings)
    streamrec_build_s = time.perf_counter() - start

    # dbt run (models only) on a fresh copy, then the same compiled SQL directly on another
    dbt_copy = root / f"dbt_{interactions}" / "warehouse.duckdb"
    dbt_copy.parent.mkdir()
    shutil.copyfile(pristine, dbt_copy)
    env = {**os.environ, "STREAMREC_WAREHOUSE": str(dbt_copy)}
    start = time.perf_counter()
    subprocess.run(
        dbt_command(settings, ["run"], select=FEATURE_MODELS), env=env, check=True, stdout=subprocess.DEVNULL
    )
    dbt_run_s = time.perf_counter() - start
    target = dbt_target_dir(settings)
    manifest = json.loads((target / "manifest.json").read_text())
    timings = {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in json.loads((target / "run_results.json").read_text())["results"]
    }
    raw_copy = root / f"raw_{interactions}" / "warehouse.duckdb"
    raw_copy.parent.mkdir()
    shutil.copyfile(pristine, raw_copy)
    raw_sql_s = run_raw_sql(raw_copy, settings.raw_path, manifest, ran=set(timings))
    load_after = os.getloadavg()[0]
    for path in (pristine, dbt_copy, raw_copy):
        path.unlink()
    return Result(
        interactions,
        users,
        items,
        generate_s,
        streamrec_build_s,
        dbt_run_s,
        raw_sql_s,
        timings,
        load_before,
        load_after,
    )


def render_section(results: list[Result], command: str) -> str:
    """The markdown section with the figures and how they were measured."""
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (from the repo root).",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}; "
        "**shared with other jobs while measured** (1-minute load average in the table; with 2 cores a load "
        "above 2 means the figures are inflated by contention).",
        "",
        "| interactions | users | items | generate (s) | `streamrec build` (s) | `dbt run` (s) "
        "| same SQL in DuckDB (s) | dbt / raw SQL | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.interactions:,} | {r.users:,} | {r.items:,} | {r.generate_s:.1f} | {r.streamrec_build_s:.1f} "
            f"| {r.dbt_run_s:.1f} | {r.raw_sql_s:.1f} | {r.overhead:.2f} | {r.load_before:.1f} → {r.load_after:.1f} |"
        )
    lines += [
        "",
        "- `streamrec build` = copy the warehouse, `dbt build` (every model, unit test and data test, incl. "
        "the PSI tests), publish with `os.replace`; it includes dbt's start-up and parsing (several seconds).",
        f"- `dbt run --select {FEATURE_MODELS}` builds the feature models only; "
        '"same SQL in DuckDB" runs the compiled SQL of the same models '
        "(manifest.json, dependency order, `create or replace table|view ... as`) in one DuckDB connection; "
        "the ratio is dbt's overhead (start-up, parsing, contract checks, per-model transactions).",
        "",
        *_verdict(results),
        "",
        "Slowest models in `dbt run` (seconds):",
        "",
    ]
    for r in results:
        slowest = sorted(r.model_timings.items(), key=lambda kv: -kv[1])[:6]
        lines.append(f"- {r.interactions:,}: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in slowest))
    return "\n".join(lines) + "\n"


def _verdict(results: list[Result]) -> list[str]:
    """The goals (10M interactions in under 60 s, dbt at most 30% over raw SQL) against the figures."""
    lines = []
    for r in results:
        if r.interactions >= 10_000_000:
            met = "met" if r.streamrec_build_s < 60 else "**not met**"
            lines.append(
                f"- Goal: {r.interactions:,} interactions build features in under 60 s: {met} "
                f"(`streamrec build` {r.streamrec_build_s:.1f} s, models, tests and publishing included)."
            )
    for r in results:
        met = "met" if r.overhead <= 1.3 else "**not met**"
        lines.append(
            f"- Goal: dbt adds at most 30% over the raw SQL at {r.interactions:,}: {met} "
            f"({(r.overhead - 1) * 100:+.0f}%"
            + (
                "; dbt's fixed start-up and parse cost of several seconds dominates small builds)."
                if r.overhead > 1.3
                else ")."
            )
        )
    return lines


def write_section(text: str, marks: tuple[str, str] = (MARK_START, MARK_END)) -> None:
    """Replace (or add) a section of docs/benchmarks.md between its markers; the others stay."""
    mark_start, mark_end = marks
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{mark_start}\n{text}{mark_end}\n"
    start, end = current.find(mark_start), current.find(mark_end)
    if start != -1 and end != -1:
        updated = current[:start] + block + current[end + len(mark_end) :].lstrip("\n")
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(updated)


@dataclass
class SparkResult:
    """Wall times (seconds) of one size on DuckDB and on Spark (local mode), or how the Spark build failed."""

    interactions: int
    users: int
    items: int
    duckdb_build_s: float
    export_s: float
    spark_build_s: float | None
    compare_s: float | None
    outcome: str
    driver_memory: str


def bench_spark_size(root: Path, interactions: int, days: int) -> SparkResult:
    """Generate one size, build it on DuckDB, export it, build it on Spark and compare the two."""
    from streamrec.batch.spark_build import spark_build
    from streamrec.batch.spark_compare import compare
    from streamrec.batch.spark_export import export
    from streamrec.core.errors import StreamRecError

    users, items = max(interactions // 40, 100), max(interactions // 500, 100)
    home = root / f"spark_home_{interactions}"
    settings = Settings(home=home).ensure()
    os.environ["STREAMREC_HOME"] = str(home)
    init_db(settings)
    generate(settings, users=users, items=items, days=days, seed=7, interactions=interactions)
    start = time.perf_counter()
    build(settings)
    duckdb_build_s = time.perf_counter() - start
    start = time.perf_counter()
    export(settings)
    export_s = time.perf_counter() - start
    memory = os.environ.get("STREAMREC_SPARK_DRIVER_MEMORY", "4g")
    start = time.perf_counter()
    try:
        spark_build(settings)
    except StreamRecError as exc:
        elapsed = time.perf_counter() - start
        return SparkResult(interactions, users, items, duckdb_build_s, export_s, None, None,
                           f"failed after {elapsed:.0f} s: {exc}", memory)  # fmt: skip
    spark_build_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        outcome = compare(settings)
    except StreamRecError as exc:
        outcome = f"differ: {exc}"
    compare_s = time.perf_counter() - start
    shutil.rmtree(home, ignore_errors=True)
    return SparkResult(interactions, users, items, duckdb_build_s, export_s, spark_build_s, compare_s, outcome, memory)


def render_spark_section(results: list[SparkResult], command: str) -> str:
    """The markdown section with the Spark figures next to DuckDB's."""
    import pyspark

    lines = [
        SPARK_SECTION,
        "",
        f"Command: `{command}` (from the repo root).",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"pyspark {pyspark.__version__} in local mode (`local[*]`, one JVM, Java {_java_version()}); "
        "**shared with other jobs while measured**.",
        "",
        "| interactions | users | items | DuckDB `streamrec build` (s) | export to Parquet (s) "
        "| Spark `streamrec spark build` (s) | Spark / DuckDB | compare (s) | driver memory | parity |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        if r.spark_build_s is None:
            lines.append(
                f"| {r.interactions:,} | {r.users:,} | {r.items:,} | {r.duckdb_build_s:.1f} | {r.export_s:.1f} "
                f"| — | — | — | {r.driver_memory} | {r.outcome} |"
            )
            continue
        parity = "equal" if r.outcome.startswith("Spark and DuckDB agree") else r.outcome
        lines.append(
            f"| {r.interactions:,} | {r.users:,} | {r.items:,} | {r.duckdb_build_s:.1f} | {r.export_s:.1f} "
            f"| {r.spark_build_s:.1f} | {r.spark_build_s / r.duckdb_build_s:.1f}x | {r.compare_s:.1f} "
            f"| {r.driver_memory} | {parity} |"
        )
    lines += [
        "",
        "- Both figures are one `dbt build` at the same explicit as_of: staging, intermediate, features, "
        "training, their unit and data tests incl. PSI (181 nodes on Spark); DuckDB's also builds the small "
        "DuckDB-only evaluation models and their tests (266 nodes). Neither run had a PSI reference captured.",
        "- Spark's figure includes JVM start-up and the per-statement overhead of dbt-spark (each of the ~180 "
        "nodes is a Spark job, a few hundred ms each even on tiny data); on one 2-core machine Spark is not "
        "expected to beat an embedded engine, the point is that the same SQL scales out unchanged "
        "(docs/scale-out.md).",
        "- compare = `streamrec spark compare`: every row of the three feature tables, keys, nulls, numbers "
        "within 1e-9 relative.",
    ]
    return "\n".join(lines) + "\n"


def _java_version() -> str:
    try:
        output = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    except FileNotFoundError:
        return "not found"
    first = output.splitlines()[0] if output else ""
    return first.split('"')[1] if '"' in first else first


@dataclass
class DailyResult:
    """Seconds and sizes of the daily path at one size."""

    interactions: int
    loaded_rows: int
    load_s: float  # the history: every raw table
    full_build_s: float
    append_rows: int
    append_load_s: float
    append_build_s: float
    full_refresh_s: float
    copy_s: float  # the warehouse (no raw) copied before a build
    warehouse_mb: float
    raw_mb: float  # the raw file, which a build no longer copies (ADR 0008)
    raw_copy_s: float  # what copying it too would cost

    @property
    def rows_per_s(self) -> float:
        """Parquet load throughput of the big load (every raw table's rows over its wall time)."""
        return self.loaded_rows / self.load_s


def bench_daily_size(root: Path, interactions: int, days: int) -> DailyResult:
    """Generate, cut the last day off, load the rest from Parquet, build, append the day, build again."""
    from streamrec.batch.build import building_path, snapshot_for_build
    from streamrec.batch.event_load import load_events
    from streamrec.lab.drop import cut_days_to_files

    users, items = max(interactions // 40, 100), max(interactions // 500, 100)
    source = Settings(home=root / f"daily_source_{interactions}").ensure()
    os.environ["STREAMREC_HOME"] = str(source.home)
    init_db(source)
    generate(source, users=users, items=items, days=days, seed=7, interactions=interactions)
    drop = root / f"drop_{interactions}"
    append_rows = cut_days_to_files(source.raw_path, drop, days=1)
    history = root / f"history_{interactions}"
    history.mkdir()
    con = duckdb.connect(str(source.raw_path), read_only=True)
    try:
        for table in ("creators", "items", "users", "sessions", "interactions"):
            con.execute(f"copy raw.{table} to '{history}/{table}.parquet'")
        loaded_rows = sum(
            con.sql(f"select count(*) from raw.{t}").fetchall()[0][0]
            for t in ("creators", "items", "users", "sessions", "interactions")
        )
    finally:
        con.close()
    settings = Settings(home=root / f"daily_{interactions}").ensure()
    os.environ["STREAMREC_HOME"] = str(settings.home)
    init_db(settings)
    start = time.perf_counter()
    load_events(settings, [str(history)])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    build(settings)
    full_build_s = time.perf_counter() - start
    start = time.perf_counter()
    load_events(settings, [str(drop)])
    append_load_s = time.perf_counter() - start
    start = time.perf_counter()
    build(settings)
    append_build_s = time.perf_counter() - start
    start = time.perf_counter()
    build(settings, full_refresh=True)
    full_refresh_s = time.perf_counter() - start
    start = time.perf_counter()
    snapshot_for_build(settings.warehouse_path, building_path(settings))
    copy_s = time.perf_counter() - start
    building_path(settings).unlink()
    # the copy ADR 0008 removed: the raw file, copied the same way (what a build copied before, on top)
    raw_copy = settings.home / "raw.copy.duckdb"
    start = time.perf_counter()
    shutil.copyfile(settings.raw_path, raw_copy)
    raw_copy_s = time.perf_counter() - start
    raw_copy.unlink()
    result = DailyResult(
        interactions,
        loaded_rows,
        load_s,
        full_build_s,
        append_rows,
        append_load_s,
        append_build_s,
        full_refresh_s,
        copy_s,
        settings.warehouse_path.stat().st_size / 1e6,
        settings.raw_path.stat().st_size / 1e6,
        raw_copy_s,
    )
    shutil.rmtree(source.home, ignore_errors=True)
    shutil.rmtree(settings.home, ignore_errors=True)
    return result


def render_daily_section(results: list[DailyResult], command: str) -> str:
    """The daily-operation section: load throughput, append + build against a full build, the copy."""
    lines = [
        DAILY_SECTION,
        "",
        f"Command: `{command}` (from the repo root).",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}; "
        "**shared with other jobs while measured** (the ratios below come from one run).",
        "",
        "| interactions | rows loaded | load (s) | rows/s | full build (s) | one day appended (rows) "
        "| its load (s) | build after the append (s) | same-size `--full-refresh` (s) | append build / full refresh "
        "| copy before a build (s) | warehouse copied (MB) | raw, not copied (MB) | its copy would take (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.interactions:,} | {r.loaded_rows:,} | {r.load_s:.1f} | {r.rows_per_s:,.0f} | {r.full_build_s:.1f} "
            f"| {r.append_rows:,} | {r.append_load_s:.1f} | {r.append_build_s:.1f} | {r.full_refresh_s:.1f} "
            f"| {r.append_build_s / r.full_refresh_s:.0%} | {r.copy_s:.1f} | {r.warehouse_mb:,.0f} "
            f"| {r.raw_mb:,.0f} | {r.raw_copy_s:.1f} |"
        )
    lines += [
        "",
        "- load = `streamrec load events` of the world's history (every raw table, Parquet, one transaction, "
        "every check of docs/data.md); rows/s counts the rows of all five tables.",
        "- full build = the first `streamrec build` (copy, every model and test, publish); the build after the "
        "append is the same command after `streamrec load events` of the cut-off day (the per-day models "
        "incremental); `--full-refresh` rebuilds the same warehouse (history + the day) from scratch.",
        "- copy = `snapshot_for_build` alone: the warehouse file (derived tables, ops; no raw since ADR 0008) "
        "copied before every build; raw = the raw file a build attaches read-only instead of copying, and "
        "the `shutil.copyfile` of it that the build no longer makes.",
        "",
    ]
    for r in results:
        if r.interactions < 10_000_000:
            continue
        load_met = "MET" if r.rows_per_s >= 2_000_000 else "MISSED"
        ratio = r.append_build_s / r.full_refresh_s
        append_met = "MET" if ratio <= 0.15 else "MISSED"
        lines += [
            f"- Goal: Parquet load at least 2M rows/s: {load_met} ({r.rows_per_s:,.0f} rows/s at "
            f"{r.loaded_rows:,} rows). To close it: about half the load is the insert into the primary-keyed "
            "raw table and its commit (DuckDB's ART index), the rest three scans (checks, cast into a temporary "
            "table, key count); inserting straight from the checked file scan and checking keys by one anti-join "
            "are the next steps.",
            f"- Goal: one appended day built in at most 15% of a full build: {append_met} ({ratio:.0%} of the "
            "same-size full refresh); only the per-day intermediate models are incremental, the span models, "
            "feature snapshots and training examples still recompute all history, and every build runs all tests.",
            f"- Goal: publish cost independent of raw's size: MET by construction (ADR 0008): the build copies the "
            f"{r.warehouse_mb:,.0f} MB warehouse ({r.copy_s:.1f} s) and not the {r.raw_mb:,.0f} MB raw file "
            f"({r.raw_copy_s:.1f} s removed); what is still copied grows with the derived tables.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run every size, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="interactions")
    parser.add_argument("--days", type=int, default=60, help="days of history")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not rewrite docs/benchmarks.md")
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb", help="which section to measure")
    parser.add_argument("--daily", action="store_true", help="measure the daily path (load, append, publish)")
    args = parser.parse_args()
    command = "python bench/feature_build.py " + " ".join(sys.argv[1:])
    measure, render, marks = (
        (bench_spark_size, render_spark_section, SPARK_MARKS)
        if args.engine == "spark"
        else (bench_size, render_section, (MARK_START, MARK_END))
    )
    if args.daily:
        measure, render, marks = bench_daily_size, render_daily_section, DAILY_MARKS
    results = []
    with tempfile.TemporaryDirectory(prefix=f"streamrec-bench-{args.engine}-") as root:
        for size in args.sizes:
            result = measure(Path(root), size, args.days)
            print(result, flush=True)
            results.append(result)
    text = render(results, command.strip())
    print(text)
    if not args.no_doc:
        write_section(text, marks)


if __name__ == "__main__":
    main()
