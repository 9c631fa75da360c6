"""`streamrec build`: run `dbt build` into a copy of the warehouse and publish the copy only if it passes.

Readers (analysts' read-only queries, the API) keep the published `warehouse.duckdb` open while dbt
works on `warehouse.building.duckdb`; a passing build replaces the published file in one `os.replace`,
a failing one is deleted so broken features are never published. DuckDB names a file's catalog after
the first dot-separated part of its name, so both files are catalog `warehouse` and the views dbt
writes into the copy keep working once it is renamed.
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
from streamrec.core.warehouse import writer_lock

FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})


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
    """The dbt command line for this home: project, profiles, per-home target/log dirs, vars and selection."""
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


def failed_results(settings: Settings) -> list[dict[str, Any]]:
    """The failing nodes of the last dbt run in this home (from run_results.json)."""
    return _results(settings, FAILED_STATUSES)


def stored_diagnoses(database: Path, results: list[dict[str, Any]]) -> list[str]:
    """The `diagnosis` rows failing tests stored (store_failures), e.g. the PSI test's unit diagnosis."""
    relations = [r["relation_name"] for r in results if r.get("relation_name")]
    if not relations or not database.exists():
        return []
    diagnoses: list[str] = []
    con = duckdb.connect(str(database), read_only=True)
    try:
        for relation in relations:
            columns = [row[0] for row in con.sql(f"select * from {relation} limit 0").description]
            if "diagnosis" in columns:
                diagnoses += [row[0] for row in con.sql(f"select diagnosis from {relation}").fetchall() if row[0]]
    finally:
        con.close()
    return diagnoses


def _is_threshold_test(result: dict[str, Any]) -> bool:
    """Whether a node is one of the scorecard's per-metric gate tests (threshold_met_*, threshold_decided_*)."""
    uid = result["unique_id"]
    return uid.startswith("test.") and (".threshold_met_" in uid or ".threshold_decided_" in uid)


def _print_section(title: str, lines: list[str]) -> None:
    if lines:
        print("\n".join(["", title, *(f"  {line}" for line in lines)]), flush=True)


def _report_warnings(database: Path, warned: list[dict[str, Any]]) -> None:
    """Print warnings under honest headings: scorecard rows (with their area) apart from feature drift."""
    scorecard = [r for r in warned if _is_threshold_test(r)]
    _print_section("Scorecard (reported, not failing this build):", stored_diagnoses(database, scorecard))
    _print_section("Feature drift warning:", stored_diagnoses(database, [r for r in warned if r not in scorecard]))


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def build(
    settings: Settings,
    select: str | None = None,
    as_of: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> None:
    """Run `dbt build` (models and tests) into a copy of the warehouse; publish it atomically only if all pass.

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
        _remove(building)
        shutil.copyfile(published, building)
        wal = published.with_name(published.name + ".wal")
        if wal.exists():  # an unclean shutdown left changes in the WAL: they belong to the copy too
            shutil.copyfile(wal, building.with_name(building.name + ".wal"))
        (dbt_target_dir(settings) / "run_results.json").unlink(missing_ok=True)
        try:
            code = run_dbt(settings, ["build"], building, select=select, as_of=as_of, variables=variables)
            failures = failed_results(settings)
            warned = _results(settings, {"warn"})
            if code == 0 and not failures:
                _report_warnings(building, warned)  # INCONCLUSIVE rows, drift between warn and fail: say so
                os.replace(building, published)
                return
            diagnoses = stored_diagnoses(building, failures)
            if failures and all(_is_threshold_test(r) for r in failures):
                # A failing scorecard metric is a measurement, not broken data: publish it so
                # `streamrec report` shows the current FAIL, and still exit non-zero. Each diagnosis
                # reads "scorecard FAIL (<area>): ..." (or INCONCLUSIVE under --strict).
                _report_warnings(building, warned)
                _print_section("Scorecard failures (this build fails):", diagnoses)
                os.replace(building, published)
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
