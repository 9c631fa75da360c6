"""Issue 11 cases 12, 13 and 14: build failures and lock conflicts end as one line naming the cause.

12. A dbt *model* failing (fresh home, `init`, `build --select evaluation`: no raw tables) used to end in
    a CatalogException traceback from the diagnosis lookup; now it is the build failure, nothing published.
13. `build --select featurs` (a typo) used to republish the warehouse and exit 0; now it is an error
    and the published file is untouched.
14. A notebook holding a read-only connection: `streamrec ingest` names the process that holds the file
    and what to do, in one line, after STREAMREC_LOCK_WAIT_SECONDS.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamrec.core.eventlog import DurableLog, ImpressionRecord
from streamrec.core.settings import Settings
from tests.faults.conftest import assert_one_line_error, cli, fingerprint

pytestmark = pytest.mark.slow


def test_a_failing_model_is_a_build_failure_not_a_traceback(settings: Settings) -> None:
    assert cli(settings.home, "init").returncode == 0
    before = fingerprint(settings.warehouse_path)
    done = cli(settings.home, "build", "--select", "evaluation")
    assert_one_line_error(done, "dbt build failed, warehouse not published", "failing node(s)")
    assert fingerprint(settings.warehouse_path) == before


def test_a_selection_matching_nothing_is_an_error_and_publishes_nothing(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    before = fingerprint(settings.warehouse_path)
    inode = settings.warehouse_path.stat().st_ino
    done = cli(settings.home, "build", "--select", "featurs")
    assert_one_line_error(done, "--select 'featurs' matches no model", "nothing published")
    assert settings.warehouse_path.stat().st_ino == inode  # not replaced by a copy
    assert fingerprint(settings.warehouse_path) == before


NOTEBOOK = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(120)
"""


def test_ingest_behind_a_notebook_names_the_holder(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    log = DurableLog(settings.logs_dir, "impressions")
    now = datetime.now(UTC)
    log.append(
        [
            ImpressionRecord(
                request_id="r1", position=1, served_at=now, user_id=1, item_id=1, policy="model", model_version="v1"
            )
        ]
    )
    log.close()
    before = fingerprint(settings.warehouse_path)
    notebook = subprocess.Popen(
        [sys.executable, "-c", NOTEBOOK, str(settings.warehouse_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert notebook.stdout is not None and notebook.stdout.readline().strip() == "open"
        done = cli(settings.home, "ingest", env={"STREAMREC_LOCK_WAIT_SECONDS": "1"})
        line = assert_one_line_error(done, f"PID {notebook.pid}", "holds it", "close that process's connection")
        assert "python" in line  # the holder's command line, so the operator knows which window to look at
    finally:
        notebook.kill()
        notebook.wait(timeout=30)
    assert fingerprint(settings.warehouse_path) == before
    done = cli(settings.home, "ingest")  # once the notebook is gone the same command works
    assert done.returncode == 0, done.stderr
