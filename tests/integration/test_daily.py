"""`streamrec daily` on a real warehouse: killed (SIGKILL) inside each step and rerun, it reaches the same state."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from streamrec.batch.migrate import init_db
from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse
from streamrec.lab.drop import cut_days_to_files
from tests.integration.history_split import split_history

CLI = [sys.executable, "-m", "streamrec"]


def table_digest(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """A hash of a table's sorted rows, doubles rounded to 9 decimals (DuckDB's parallel sums vary in the last bits)."""
    described = con.sql(f"describe {relation}").fetchall()
    columns = ", ".join(
        f'round("{name}", 9) as "{name}"' if kind in ("DOUBLE", "FLOAT") else f'"{name}"'
        for name, kind, *_ in described
    )
    rows = con.sql(f"select {columns} from {relation} order by all").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _state(settings: Settings, evaluation: bool = True) -> dict[str, object]:
    """What a daily run leaves: raw row counts, the loads recorded, and a hash of each feature table."""
    with open_warehouse(settings, read_only=True) as con:
        state: dict[str, object] = {
            table: con.sql(f"select count(*), count(distinct {key}) from raw.{table}").fetchall()[0]
            for table, key in (("sessions", "session_id"), ("interactions", "interaction_id"))
        }
        if evaluation:  # a daily home: what it loaded and the scorecard it built
            state["loads"] = con.sql("select table_name, rows_inserted from ops.raw_loads order by all").fetchall()
            state["scorecard"] = con.sql("select count(*) from evaluation.scorecard").fetchall()[0][0]
        for table in ("user_features", "item_features", "training_examples"):
            state[table] = table_digest(con, f"features.{table}")
    return state


def _daily(home: Path, drop: Path, kill_at: str | None = None, delay: float = 0.0) -> int:
    """Run `streamrec daily`; with `kill_at`, SIGKILL it (and dbt) `delay` s after that step starts."""
    env = {**os.environ, "STREAMREC_HOME": str(home)}
    process = subprocess.Popen(
        [*CLI, "daily", "--drop", str(drop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if kill_at and line.startswith("daily step") and line.rstrip().endswith(f": {kill_at}"):
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=300)
    assert "Traceback" not in "".join(output), "".join(output)[-3000:]
    return process.returncode


@pytest.mark.slow
def test_daily_killed_in_each_step_and_rerun_reaches_the_same_state(generated_home: Path, tmp_path: Path) -> None:
    homes = []
    for name in ("straight", "killed"):
        home = tmp_path / name
        subprocess.run(["cp", "-r", str(generated_home), str(home)], check=True)
        init_db(Settings(home=home))  # the session home may predate ops.raw_loads
        cut_days_to_files(Settings(home=home).raw_path, tmp_path / f"drop_{name}", days=3)
        homes.append(home)
    straight, killed = homes
    assert _daily(straight, tmp_path / "drop_straight") == 0
    expected = _state(Settings(home=straight))

    # Inside the load (before or during its transaction), mid-dbt in both builds, and in ingest.
    for step, delay in (("load", 0.0), ("build", 4.0), ("ingest", 0.0), ("evaluate", 3.0)):
        assert _daily(killed, tmp_path / "drop_killed", kill_at=step, delay=delay) == -signal.SIGKILL
    assert _daily(killed, tmp_path / "drop_killed") == 0
    assert _state(Settings(home=killed)) == expected
    assert not (killed / "warehouse.building.duckdb").exists()
    # A rerun with nothing new changes nothing either.
    assert _daily(killed, tmp_path / "drop_killed") == 0
    assert _state(Settings(home=killed)) == expected


@pytest.mark.slow
def test_history_then_seven_daily_appends_gives_the_features_of_one_full_load(built_home: Path, tmp_path: Path) -> None:
    """The world loaded from Parquet as all but 7 days, then one day per load, builds the same features."""
    from streamrec.batch.build import build
    from streamrec.batch.event_load import load_events

    settings, drop, appended = split_history(built_home, tmp_path, days=7)
    days = sorted({path.name.split("_", 1)[1] for path in drop.iterdir()})
    assert len(days) == 7
    for index, day in enumerate(days):
        summary = load_events(settings, [str(drop / f"sessions_{day}"), str(drop / f"interactions_{day}")])
        assert {table for _, table, _, _ in summary.files} == {"sessions", "interactions"}
        if index == 3:
            build(settings, select="staging intermediate features training")  # a build between appends
    build(settings, select="staging intermediate features training")
    full = _state(Settings(home=built_home), evaluation=False)
    daily = _state(settings, evaluation=False)
    assert appended > 1_000
    assert daily == full
