"""Issue 11 case 1: a WAL left by a killed writer never bricks the warehouse after `streamrec build`.

A writer killed with SIGKILL after it committed leaves its rows only in `warehouse.duckdb.wal`. The
build used to copy that WAL into its copy and rename the copy over the published file, leaving the
old WAL beside a file it was not written for: every later open failed with "WAL checkpoint
iteration does not match". Here writers are killed at several points (after a DDL commit, after an
insert commit, in the middle of an uncommitted transaction, and a plain `dbt build` killed while it
writes), then `streamrec build` runs and every command works with every committed row present once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamrec.batch.build import dbt_command, wal_path
from streamrec.core.settings import Settings
from tests.faults.conftest import assert_no_traceback, cli, fingerprint

pytestmark = pytest.mark.slow

SELECT = "stg_raw__creators"  # the cheapest build that still copies and republishes the whole warehouse

# Each writer commits, then is killed by SIGKILL at a different point: no close, no checkpoint.
WRITER = """
import duckdb, os, signal, sys
con = duckdb.connect(sys.argv[1])
point = sys.argv[2]
con.execute("create table if not exists main.fault_rows (writer varchar, n integer)")
if point == "after_ddl":
    os.kill(os.getpid(), signal.SIGKILL)
con.execute("insert into main.fault_rows select ?, range from range(100)", [point])
if point == "after_insert":
    os.kill(os.getpid(), signal.SIGKILL)
con.execute("begin transaction")
con.execute("insert into main.fault_rows select 'uncommitted', range from range(1000)")
con.execute("delete from main.fault_rows")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _kill_writer(warehouse: Path, point: str) -> None:
    done = subprocess.run([sys.executable, "-c", WRITER, str(warehouse), point], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert wal_path(warehouse).exists(), "the killed writer should have left a WAL"


def _assert_every_command_works(home: Path) -> None:
    for args in (["sql", "select 1 as ok"], ["versions"], ["ingest"]):
        done = cli(home, *args)
        assert_no_traceback(done)
        assert done.returncode == 0, (args, done.stderr)


def test_build_after_killed_writers_keeps_every_committed_row(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    warehouse = settings.warehouse_path
    creators_before = fingerprint(warehouse)["raw.creators"]
    for point in ("after_ddl", "after_insert", "mid_transaction"):
        _kill_writer(warehouse, point)

    done = cli(settings.home, "build", "--select", SELECT)
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not wal_path(warehouse).exists()
    _assert_every_command_works(settings.home)

    counts = cli(settings.home, "sql", "select writer, count(*) as n from main.fault_rows group by writer order by 1")
    assert counts.returncode == 0, counts.stderr
    rows = fingerprint(warehouse)
    assert rows["main.fault_rows"][0] == 200  # after_insert and mid_transaction committed 100 each, once
    assert "uncommitted" not in counts.stdout  # and the uncommitted delete is gone
    assert rows["raw.creators"] == creators_before


def test_build_after_killed_writers_of_the_raw_file(copy_home, built_home: Path) -> None:
    """The same kills on `raw.duckdb`, which loaders write in place and a build attaches read-only (ADR 0008)."""
    settings: Settings = copy_home(built_home)
    raw = settings.raw_path
    for point in ("after_ddl", "after_insert", "mid_transaction"):
        _kill_writer(raw, point)

    done = cli(settings.home, "build", "--select", SELECT)
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not wal_path(raw).exists()  # the build folded the loader's WAL into the raw file before attaching it
    _assert_every_command_works(settings.home)
    rows = fingerprint(settings.warehouse_path)
    assert rows["raw.fault_rows"][0] == 200  # seen through the warehouse's attach, every committed row once
    counts = cli(settings.home, "sql", "select count(*) as n from raw.fault_rows where writer = 'uncommitted'")
    assert counts.returncode == 0 and "│ 0 " in counts.stdout, counts.stdout


def test_build_after_a_killed_dbt_build_on_the_published_file(copy_home, built_home: Path) -> None:
    """A plain `dbt build` (not `streamrec build`) writing the published file directly, killed mid-run."""
    settings: Settings = copy_home(built_home)
    warehouse = settings.warehouse_path
    env = {**os.environ, "STREAMREC_HOME": str(settings.home), "STREAMREC_WAREHOUSE": str(warehouse)}
    dbt = subprocess.Popen(
        dbt_command(settings, ["build"]), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not wal_path(warehouse).exists() and dbt.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let it commit a model or two
    finally:
        dbt.send_signal(signal.SIGKILL)
        dbt.wait(timeout=30)
    before = cli(settings.home, "sql", "select count(*) from raw.interactions")
    assert before.returncode == 0, before.stderr  # the WAL itself is fine: DuckDB replays it

    done = cli(settings.home, "build", "--select", SELECT)
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not wal_path(warehouse).exists()
    _assert_every_command_works(settings.home)
    assert cli(settings.home, "sql", "select count(*) from raw.interactions").stdout == before.stdout
