"""`streamrec build`: run `dbt build` into a copy of the warehouse and publish the copy only if it passes.

Readers (analysts' read-only queries, the API) keep the published `warehouse.duckdb` open while dbt
works on `warehouse.building.duckdb`; a passing build replaces the published file in one `os.replace`,
a failing one is deleted so broken features are never published. DuckDB names a file's catalog after
the first dot-separated part of its name, so both files are catalog `warehouse` and the views dbt
writes into the copy keep working once it is renamed.

A DuckDB file and its write-ahead log (`warehouse.duckdb.wal`) are one database: a writer killed
after a commit leaves committed rows only in the WAL, and a WAL beside a file it was not written
for makes every later open fail ("WAL checkpoint iteration does not match"). So the publish
(`snapshot_for_build`, `publish`) checkpoints the published file before copying it (the copy then
holds every committed row and no WAL is copied), checkpoints the copy before the rename, and
refuses to publish if a WAL appeared beside the published file meanwhile (a writer that ignored the
lock): the rename never leaves a WAL next to a file it does not belong to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from streamrec.core.errors import StreamRecError
from streamrec.core.logging_setup import dbt_log_args
from streamrec.core.settings import DBT_PROJECT_DIR, PROFILES_DIR, Settings
from streamrec.core.warehouse import open_duckdb, open_warehouse, writer_lock

FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
_NODE_KINDS = ("model.", "seed.", "test.", "snapshot.", "unit_test.")


def building_path(settings: Settings) -> Path:
    """The copy dbt builds into before it is published."""
    return settings.home / "warehouse.building.duckdb"


def dbt_target_dir(settings: Settings) -> Path:
    """dbt's target/ for this home, so builds of different homes never share compiled SQL or run results."""
    return settings.home / "dbt" / "target"


def parse_as_of(as_of: str) -> str:
    """Validate a feature timestamp: a date or a midnight timestamp (features live on a daily grid)."""
    try:
        moment = datetime.fromisoformat(as_of.strip())
    except ValueError:
        raise StreamRecError(f"--as-of {as_of!r} is not a date or timestamp (e.g. 2024-03-01)") from None
    if moment.tzinfo is not None or (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        raise StreamRecError(f"--as-of {as_of!r} must be a midnight without time zone (features are daily, UTC)")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def dbt_command(
    settings: Settings,
    args: list[str],
    select: str | None = None,
    as_of: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> list[str]:
    """The dbt command line for this home: project, profiles, per-home target/log dirs, vars and selection.

    The profile attaches the home's raw file read-only, which fails if it does not exist: an empty one is
    created first for a home that never loaded anything (`dbt compile`, `dbt ls` before `streamrec init`).
    """
    if not settings.raw_path.exists():
        settings.ensure()
        duckdb.connect(str(settings.raw_path)).close()
    command = [
        sys.executable,
        "-c",
        "from dbt.cli.main import cli; cli()",
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(PROFILES_DIR),
        "--target-path",
        str(dbt_target_dir(settings)),
        "--log-path",
        str(settings.home / "dbt" / "logs"),
        *dbt_log_args(),  # dbt's JSON lines when STREAMREC_LOG_FORMAT=json
    ]
    dbt_vars = dict(variables or {})
    if as_of is not None:
        dbt_vars["as_of"] = parse_as_of(as_of)
    if dbt_vars:
        command += ["--vars", json.dumps(dbt_vars)]
    if select:
        # only tests whose every parent is selected: others would judge stale, unselected models
        command += ["--select", select, "--indirect-selection", "cautious"]
    return command


def run_dbt(
    settings: Settings,
    args: list[str],
    warehouse: Path,
    select: str | None = None,
    as_of: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """Run dbt against `warehouse` with its output streaming to this process's stdout; return its exit code."""
    env = {**os.environ, "STREAMREC_HOME": str(settings.home), "STREAMREC_WAREHOUSE": str(warehouse)}
    sys.stdout.flush()
    completed = subprocess.run(dbt_command(settings, args, select, as_of, variables), env=env, check=False)
    return completed.returncode


def _results(settings: Settings, statuses: frozenset[str] | set[str]) -> list[dict[str, Any]]:
    path = dbt_target_dir(settings) / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text()).get("results", [])
    return [r for r in results if r.get("status") in statuses]


def _ran_nodes(settings: Settings) -> int:
    """How many models, seeds, tests and snapshots the last dbt run executed (hooks do not count)."""
    path = dbt_target_dir(settings) / "run_results.json"
    if not path.exists():
        return 0
    results = json.loads(path.read_text()).get("results", [])
    return sum(1 for r in results if str(r.get("unique_id", "")).startswith(_NODE_KINDS))


def failed_results(settings: Settings) -> list[dict[str, Any]]:
    """The failing nodes of the last dbt run in this home (from run_results.json)."""
    return _results(settings, FAILED_STATUSES)


def stored_diagnoses(database: Path, results: list[dict[str, Any]]) -> list[str]:
    """The `diagnosis` rows failing tests stored (store_failures), e.g. the PSI test's unit diagnosis.

    Only tests store failures; a failing model's relation was never created, so models are skipped, and
    a test whose stored relation is missing (dbt failed before writing it) contributes nothing.
    """
    relations = [r["relation_name"] for r in results if r.get("relation_name") and r["unique_id"].startswith("test.")]
    if not relations or not database.exists():
        return []
    diagnoses: list[str] = []
    con = duckdb.connect(str(database), read_only=True)
    try:
        for relation in relations:
            try:
                columns = [row[0] for row in con.sql(f"select * from {relation} limit 0").description]
                if "diagnosis" in columns:
                    rows = con.sql(f"select diagnosis from {relation}").fetchall()
                    diagnoses += [row[0] for row in rows if row[0]]
            except duckdb.CatalogException:
                continue
    finally:
        con.close()
    return diagnoses


def _is_threshold_test(result: dict[str, Any]) -> bool:
    """Whether a node is one of the scorecard's per-metric gate tests (threshold_met_*, threshold_decided_*)."""
    uid = result["unique_id"]
    return uid.startswith("test.") and (".threshold_met_" in uid or ".threshold_decided_" in uid)


def scorecard_only_failed(settings: Settings) -> bool:
    """Whether the last build failed only on scorecard gate tests (it was then published with that scorecard)."""
    failures = failed_results(settings)
    return bool(failures) and all(_is_threshold_test(r) for r in failures)


def _print_section(title: str, lines: list[str]) -> None:
    if lines:
        print("\n".join(["", title, *(f"  {line}" for line in lines)]), flush=True)


def _report_warnings(database: Path, warned: list[dict[str, Any]]) -> None:
    """Print warnings under honest headings: scorecard rows (with their area) apart from feature drift."""
    scorecard = [r for r in warned if _is_threshold_test(r)]
    _print_section("Scorecard (reported, not failing this build):", stored_diagnoses(database, scorecard))
    _print_section("Feature drift warning:", stored_diagnoses(database, [r for r in warned if r not in scorecard]))


def wal_path(database: Path) -> Path:
    """DuckDB's write-ahead log of a database file."""
    return database.with_name(database.name + ".wal")


def _remove(path: Path) -> None:
    for leftover in (path, wal_path(path)):
        leftover.unlink(missing_ok=True)


def checkpoint(database: Path) -> None:
    """Fold the database's WAL into the file (open read-write, CHECKPOINT, close); afterwards no WAL is left.

    Caller holds the writer lock. Waits (open_duckdb) while a reader holds the file, then fails naming it.
    """
    con = open_duckdb(database)
    try:
        con.execute("checkpoint")
    finally:
        con.close()
    if wal_path(database).exists():  # pragma: no cover - DuckDB removes the WAL on a clean close
        raise StreamRecError(f"{wal_path(database)} is still there after a checkpoint of {database}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_for_build(published: Path, building: Path) -> None:
    """Copy the published warehouse to `building` with every committed row (its WAL checkpointed first)."""
    _remove(building)
    if wal_path(published).exists():  # a writer was killed after a commit: those rows are only in the WAL
        checkpoint(published)
    try:
        shutil.copyfile(published, building)
    except OSError as exc:
        _remove(building)
        size = published.stat().st_size / 1e6
        raise StreamRecError(
            f"cannot copy {published} for the build ({exc.strerror}; the copy needs {size:,.0f} MB free in "
            f"{building.parent}); nothing was built or published"
        ) from None


def publish(building: Path, published: Path) -> None:
    """Replace the published warehouse by the built copy in one rename, never leaving a stale WAL beside it."""
    checkpoint(building)  # the copy's own WAL (if dbt left one) goes into the file that is renamed
    if wal_path(published).exists():
        # Someone wrote to the published file without the writer lock during the build: the rename would
        # drop those rows and brick the file with a WAL that is not its own.
        raise StreamRecError(
            f"{published} was written during the build by a process that did not take the writer lock "
            f"({wal_path(published)} appeared); the build was not published: run `streamrec build` again"
        )
    _fsync(building)
    os.replace(building, published)
    _fsync(published.parent)


def build(
    settings: Settings,
    select: str | None = None,
    as_of: str | None = None,
    variables: Mapping[str, Any] | None = None,
    full_refresh: bool = False,
) -> None:
    """Run `dbt build` (models and tests) into a copy of the warehouse; publish it atomically only if all pass.

    Incremental models recompute only their lookback; `full_refresh` rebuilds them from all of raw.

    Raises StreamRecError naming the failing nodes (and any PSI diagnosis); the published warehouse
    is then untouched. The one exception: when only scorecard gate tests fail (a FAIL row, or an
    INCONCLUSIVE one with `evaluation_strict`), the build is published (the scorecard is a
    measurement) and the error names each failing metric with its area.
    """
    # Failing scorecard thresholds fail `streamrec build`; a plain `dbt build` only warns (dbt_project.yml vars).
    variables = {"evaluation_threshold_severity": "error", **(variables or {})}
    published = settings.warehouse_path
    building = building_path(settings)
    if as_of is not None:
        parse_as_of(as_of)  # fail before taking the lock or copying anything
    with writer_lock(settings):
        if not published.exists():
            raise StreamRecError(f"no warehouse at {published}: run `streamrec init` and `streamrec generate` first")
        # The raw file exists and holds every committed row before dbt attaches it read-only (and an older
        # home's raw schema moves into it: open_warehouse), so the copy below carries no raw (ADR 0008).
        open_warehouse(settings, write_raw=True).close()
        if wal_path(settings.raw_path).exists():
            checkpoint(settings.raw_path)
        snapshot_for_build(published, building)
        (dbt_target_dir(settings) / "run_results.json").unlink(missing_ok=True)
        try:
            args = ["build", "--full-refresh"] if full_refresh else ["build"]
            code = run_dbt(settings, args, building, select=select, as_of=as_of, variables=variables)
            failures = failed_results(settings)
            if code == 0 and not failures and not _ran_nodes(settings):
                # dbt says "Nothing to do" and exits 0 for a selection that matches no node (a typo):
                # publishing would only republish the same warehouse and hide the mistake.
                raise StreamRecError(
                    f"--select {select!r} matches no model, seed or test: nothing was built and nothing published "
                    "(see `dbt ls` for the node names)"
                )
            warned = _results(settings, {"warn"})
            if code == 0 and not failures:
                _report_warnings(building, warned)  # INCONCLUSIVE rows, drift between warn and fail: say so
                publish(building, published)
                return
            diagnoses = stored_diagnoses(building, failures)
            if failures and all(_is_threshold_test(r) for r in failures):
                # A failing scorecard metric is a measurement, not broken data: publish it so
                # `streamrec report` shows the current FAIL, and still exit non-zero. Each diagnosis
                # reads "scorecard FAIL (<area>): ..." (or INCONCLUSIVE under --strict).
                _report_warnings(building, warned)
                _print_section("Scorecard failures (this build fails):", diagnoses)
                publish(building, published)
                names = ", ".join(r["unique_id"].split(".")[2] for r in failures)
                raise StreamRecError(
                    f"{len(failures)} scorecard threshold(s) failed: {names} (warehouse published with this "
                    "scorecard)" + "".join(f"; {d}" for d in diagnoses)
                )
        finally:
            _remove(building)
    if not failures:
        raise StreamRecError(f"dbt build exited with code {code} before running any node (see its output above)")
    names = ", ".join(
        r["unique_id"].split(".")[2] if r["unique_id"].startswith("test.") else r["unique_id"] for r in failures[:10]
    )
    more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
    message = f"dbt build failed, warehouse not published: {len(failures)} failing node(s): {names}{more}"
    if diagnoses:
        message += "; " + "; ".join(diagnoses)
        print("\n".join(["", "Feature drift diagnosis:", *(f"  {d}" for d in diagnoses)]), flush=True)
    raise StreamRecError(message)
