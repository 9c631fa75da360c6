"""`streamrec sql`: ad-hoc read-only SQL from the command line; bad SQL is one error line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sql_home")
    subprocess.run([sys.executable, "-m", "streamrec", "init"], env=_env(home), check=True, capture_output=True)
    return home


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "STREAMREC_HOME": str(home)}


def _sql(home: Path, query: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec", "sql", query], env=_env(home), capture_output=True, text=True
    )


def test_a_query_prints_its_rows(home: Path) -> None:
    done = _sql(home, "select 41 + 1 as answer")
    assert done.returncode == 0, done.stderr
    assert "answer" in done.stdout and "42" in done.stdout


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("select no_such_column", 'Referenced column "no_such_column" was not found'),
        ("delete from ops.model_versions", "read-only"),
    ],
)
def test_bad_or_writing_sql_is_one_error_line(home: Path, query: str, needle: str) -> None:
    done = _sql(home, query)
    assert done.returncode == 1
    assert done.stderr.startswith(("error: query failed:", "error: query refused:")) and needle in done.stderr
    assert "Traceback" not in done.stderr
