"""Fault-suite helpers: run the real CLI as a subprocess, check its failure shape, fingerprint the warehouse.

Every fault test asserts the same things about a refused or survived operation: no traceback on
stderr, a one-line cause, and (where the operation was refused) a warehouse whose fingerprint (row
count and an order-independent checksum of every table) is what it was before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

CLI = [sys.executable, "-m", "streamrec"]


def cli(home: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`streamrec ARGS` over `home` in a subprocess, as an operator runs it."""
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, "STREAMREC_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_traceback(done: subprocess.CompletedProcess) -> None:
    """Neither stream shows a Python traceback."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stdout, done.stdout[-3000:]


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with exit 1 and one `error: ...` line on stderr containing every needle."""
    assert_no_traceback(done)
    assert done.returncode == 1, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def fingerprint(database: Path) -> dict[str, tuple[int, int]]:
    """schema.table -> (rows, checksum) for every base table: equal fingerprints, equal contents (up to order)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        result = {}
        for schema, table in tables:
            name = f'"{schema}"."{table}"'
            rows, checksum = con.execute(f"select count(*), coalesce(sum(hash(t)), 0) from {name} as t").fetchall()[0]
            result[f"{schema}.{table}"] = (int(rows), int(checksum))
        return result
    finally:
        con.close()
