"""DuckDB access for batch jobs: one writer at a time (a file lock), short-lived connections.

DuckDB lets one process hold a file read-write and then no other process may open it, so every
writer takes `warehouse.lock` first and keeps its connection only for the work it does. With
DuckDB 2.0 an `execute()` result streams and owns the connection until it is read to the end:
the helpers here always drain results (`fetchall`) so a connection is free for the next statement.
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

LOCK_TIMEOUT_SECONDS = 120.0

# What `streamrec sql` runs: statements that only read. DESCRIBE, SUMMARIZE and SHOW parse as SELECT;
# MULTI is PIVOT (a temporary enum type, then a SELECT). CALL is left out: it also runs CHECKPOINT.
READ_ONLY_STATEMENTS = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
        duckdb.StatementType.MULTI,
    }
)
# The engine-level sandbox of an analysis connection: no file, network or extension access beyond the
# opened warehouse (ATTACH, COPY TO, EXPORT, INSTALL, read_csv('/etc/...') all fail inside DuckDB), and no
# SET/RESET/PRAGMA that could turn that back on.
ANALYSIS_CONFIG: dict[str, Any] = {"enable_external_access": False, "lock_configuration": True}


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


def lock_wait_seconds() -> float:
    """How long a job waits for another process to release the DuckDB file (STREAMREC_LOCK_WAIT_SECONDS, 30)."""
    from streamrec.core.settings import StreamRecSettings

    return StreamRecSettings.from_env().lock_wait_seconds


def open_duckdb(
    path: Path, read_only: bool = False, timeout: float | None = None, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, retrying while another process holds it; fail with one line naming the holder."""
    if read_only and not path.exists():
        raise StreamRecError(f"no warehouse at {path}: run `streamrec init` and `streamrec generate` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    return _retry_locked(
        path, read_only, lambda: duckdb.connect(str(path), read_only=read_only, config=config or {}), timeout
    )


def _process_name(pid: int) -> str:
    """The command line of a local process (best effort: /proc), shortened for one error line."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "a process"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    text = " ".join(" ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words)).split())
    return text[:80] + ("…" if len(text) > 80 else "")


def lock_conflict_message(path: Path, error: str, read_only: bool, waited: float) -> str:
    """One line naming the process that holds the warehouse and what to do about it (DuckDB's lock rule)."""
    match = re.search(r"\(PID (\d+)\)", error)
    holder = f"PID {match.group(1)} ({_process_name(int(match.group(1)))})" if match else "another process"
    mode = "read-only" if read_only else "read-write"
    return (
        f"cannot open {path} {mode}: {holder} holds it (waited {waited:.0f} s); DuckDB lets one process write or "
        "any number read, never both: close that process's connection (con.close() in a notebook) or stop it, "
        "then retry"
    )


def attach_raw(con: duckdb.DuckDBPyConnection, settings: Settings, read_only: bool = True) -> None:
    """Attach the raw tables' file (`raw.duckdb`) as catalog `raw`, so `raw.interactions` resolves as before.

    The raw tables live in that file's `main` schema: a two-part name `raw.<table>` then means catalog raw,
    its default schema, in the raw file itself and in every warehouse connection (ADR 0008). A read-only
    attach of a file that does not exist yet is skipped (no data loaded: `raw.*` is then missing, as it was
    before the first load); a writable one creates it. Waits while another process writes it, like
    `open_duckdb`.
    """
    path = settings.raw_path
    if read_only and not path.exists():
        return
    mode = " (read_only)" if read_only else ""
    quoted = str(path).replace("'", "''")  # a home path may hold a quote
    _retry_locked(path, read_only, lambda: con.execute(f"attach '{quoted}' as raw{mode}"))


def _retry_locked(path: Path, read_only: bool, action: Any, timeout: float | None = None) -> Any:
    """Run `action` (an open or attach of `path`), retrying while another process holds the file."""
    timeout = lock_wait_seconds() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StreamRecError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc
            if time.monotonic() > deadline:
                raise StreamRecError(lock_conflict_message(path, str(exc), read_only, timeout)) from None
            time.sleep(0.2)


def open_warehouse(
    settings: Settings, read_only: bool = False, write_raw: bool = False, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """The published warehouse with the raw file attached as `raw` (read-only unless `write_raw`).

    One DuckDB transaction writes one file: a writer of raw and of a warehouse table commits them in two
    transactions (see raw_load.replace_raw for the order that keeps a crash between them safe).
    """
    con = open_duckdb(settings.warehouse_path, read_only=read_only, config=config)
    try:
        legacy = None if read_only else _legacy_raw_schema(con)
        attach_raw(con, settings, read_only=read_only or not (write_raw or legacy is not None))
        if legacy is not None:
            move_legacy_raw(con, legacy)
    except BaseException:
        con.close()
        raise
    return con


def _legacy_raw_schema(con: duckdb.DuckDBPyConnection) -> list[str] | None:
    """The tables of a `raw` schema inside the warehouse file itself (a home from before ADR 0008).

    None when there is no such schema; an empty list when the schema is there without tables (a move
    interrupted after its copy), which still has to be dropped.
    """
    rows = fetchall(
        con,
        "select table_name from information_schema.tables where table_catalog = current_database() "
        "and table_schema = 'raw' and table_type = 'BASE TABLE' order by 1",
    )
    has_schema = scalar(
        con,
        "select count(*) from information_schema.schemata where catalog_name = current_database() "
        "and schema_name = 'raw'",
    )
    return [row[0] for row in rows] if has_schema else None


def move_legacy_raw(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> None:
    """Move a pre-ADR-0008 warehouse's `raw` schema into the raw file (attached writable as `raw`).

    Two transactions, copy then drop: a crash between them leaves both copies, and the next writer's
    open copies again (`create or replace`) and drops; nothing is lost. Until the move, `raw.<table>`
    would be ambiguous between the schema and the attached catalog.
    """
    database = scalar(con, "select current_database()")
    with transaction(con):
        for table in tables:
            con.execute(f'create or replace table raw.main."{table}" as from "{database}".raw."{table}"')
    with transaction(con):
        con.execute(f'drop schema "{database}".raw cascade')


@contextmanager
def connect(
    settings: Settings, read_only: bool = False, write_raw: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the warehouse (raw attached); writers also hold the writer lock."""
    if read_only:
        con = open_warehouse(settings, read_only=True)
        try:
            yield con
        finally:
            con.close()
        return
    with writer_lock(settings):
        con = open_warehouse(settings, write_raw=write_raw)
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
    """Whether `schema.table` resolves (table or view): a schema of this database, or an attached catalog's
    default schema (`raw.<table>` is the raw file's `main.<table>`, ADR 0008)."""
    return bool(
        scalar(
            con,
            "select count(*) from information_schema.tables where table_name = ? and ((table_catalog = "
            "current_database() and table_schema = ?) or (table_catalog = ? and table_schema = 'main'))",
            [table, schema, schema],
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


def read_only_query(
    settings: Settings, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> tuple[list[str], list[tuple]]:
    """Run analyst SQL against the published warehouse without any way to write; (column names, rows).

    Three engine-level walls, none of them a pattern match on the SQL text: DuckDB's own parser
    (`extract_statements`) classifies every statement and only reading ones (READ_ONLY_STATEMENTS) run;
    the file is opened `read_only`; and the connection has external access disabled and its
    configuration locked (ANALYSIS_CONFIG), so ATTACH, COPY TO, EXPORT, INSTALL and file-reading
    functions fail inside DuckDB whatever the statement type. The last statement's rows are returned;
    bind `params` (`?`/`$1` values or `$name` mapping) need a single statement.
    """
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise StreamRecError(f"query failed: {_first_line(exc)}") from None
    if not statements:
        raise StreamRecError("query failed: no SQL statement given")
    if params and len(statements) > 1:
        raise StreamRecError(f"query refused: bind values (--param) need one statement, got {len(statements)}")
    for statement in statements:
        if statement.type not in READ_ONLY_STATEMENTS:
            kind = statement.type.name.lower().replace("_", " ")
            raise StreamRecError(
                f"query refused: `streamrec sql` is read-only analysis and runs no {kind} statement "
                f"({statement.query.strip()[:60]!r}); allowed: SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW, EXPLAIN, "
                "PRAGMA, PIVOT; nothing was run"
            )
    # The raw file is attached before the sandbox closes: afterwards no ATTACH and no setting change is possible.
    con = open_warehouse(settings, read_only=True)
    try:
        for name, value in ANALYSIS_CONFIG.items():
            con.execute(f"set {name} = {str(value).lower()}")
        names: list[str] = []
        rows: list[tuple] = []
        for statement in statements:
            result = con.execute(statement, params) if params else con.execute(statement)
            names = [d[0] for d in result.description] if result.description else []
            rows = result.fetchall()
        return names, rows
    except duckdb.Error as exc:
        # The analyst's SQL is wrong (or tried something the sandbox refuses), not the program: one line.
        raise StreamRecError(f"query failed: {_first_line(exc)}") from None
    finally:
        con.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
