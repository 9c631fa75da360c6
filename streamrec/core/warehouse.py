"""DuckDB access for batch jobs: one writer at a time (a file lock), short-lived connections.

DuckDB lets one process hold a file read-write and then no other process may open it, so every
writer takes `warehouse.lock` first and keeps its connection only for the work it does. With
DuckDB 2.0 an `execute()` result streams and owns the connection until it is read to the end:
the helpers here always drain results (`fetchall`) so a connection is free for the next statement.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

LOCK_TIMEOUT_SECONDS = 120.0


@contextmanager
def writer_lock(settings: Settings, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the warehouse's writer lock: batch writers (generate, load, build, ingest, promote) queue here."""
    settings.ensure()
    lock_path = settings.home / "warehouse.lock"
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StreamRecError(
                        f"warehouse is busy: another StreamRec job held {lock_path} for over {timeout:.0f} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_duckdb(path: Path, read_only: bool = False, timeout: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, retrying while another process holds it; fail with a message naming the file."""
    if read_only and not path.exists():
        raise StreamRecError(f"no warehouse at {path}: run `streamrec init` and `streamrec generate` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise StreamRecError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc
            time.sleep(0.2)


@contextmanager
def connect(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the warehouse; writers also hold the writer lock."""
    if read_only:
        con = open_duckdb(settings.warehouse_path, read_only=True)
        try:
            yield con
        finally:
            con.close()
        return
    with writer_lock(settings):
        con = open_duckdb(settings.warehouse_path)
        try:
            yield con
        finally:
            con.close()


def fetchall(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
    """Run a query and read every row, leaving the connection free (DuckDB 2.0 results stream)."""
    return con.execute(sql, params or []).fetchall()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> Any:
    """The first column of the first row, or None when the query returns no rows."""
    rows = fetchall(con, sql, params)
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether schema.table exists (table or view)."""
    return bool(
        scalar(
            con,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
    )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: committed when the block ends, rolled back on any exception (KeyboardInterrupt too)."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
