"""`streamrec ingest`: load the API's JSON-lines logs into ops.impressions and ops.events, idempotently.

The log segments are the source of truth and are never deleted or modified here. Each run re-reads
every segment with DuckDB's `read_json` (explicit column types, `ignore_errors` so a torn last line
becomes an all-NULL row that is counted and dropped) and inserts only keys the table does not hold
yet, all in one transaction under the writer lock. Re-reading everything is the simplest correct
scheme and is fast at our scale (DuckDB scans JSON lines at hundreds of MB/s).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlalchemy as sa

from streamrec.core.errors import StreamRecError
from streamrec.core.eventlog import DamagedLine, damaged_lines, segment_paths
from streamrec.core.progress import progress
from streamrec.core.settings import Settings
from streamrec.core.tables import Base, Event, Impression
from streamrec.core.warehouse import connect, fetchall, scalar, table_exists, transaction

# Timestamps are read as TIMESTAMPTZ with the session in UTC, so "…Z", "+02:00" and naive (UTC) strings all
# land as the right UTC wall-clock time in the TIMESTAMP columns.
_DUCKDB_TYPES: dict[type, str] = {
    sa.String: "VARCHAR",
    sa.DateTime: "TIMESTAMPTZ",
    sa.Integer: "INTEGER",
    sa.BigInteger: "BIGINT",
    sa.Double: "DOUBLE",
}


@dataclass(frozen=True)
class StreamTarget:
    """Where one log stream goes: its ops table and that table's key."""

    stream: str
    table: sa.Table

    @property
    def key(self) -> list[str]:
        """The primary-key columns, which are also the deduplication key."""
        return [column.name for column in self.table.primary_key.columns]

    @property
    def columns(self) -> dict[str, str]:
        """Column name → DuckDB type for read_json, taken from the model so it cannot drift from the table."""
        return {column.name: _DUCKDB_TYPES[type(column.type)] for column in self.table.columns}

    @property
    def required(self) -> list[str]:
        """Columns that may not be NULL."""
        return [column.name for column in self.table.columns if not column.nullable]


TARGETS = (
    StreamTarget("impressions", Impression.__table__),  # type: ignore[arg-type]
    StreamTarget("events", Event.__table__),  # type: ignore[arg-type]
)


@dataclass
class StreamResult:
    """What one stream's ingest did."""

    stream: str
    segments: int = 0
    lines: int = 0
    torn: int = 0
    damaged: int = 0
    new: int = 0

    @property
    def duplicates(self) -> int:
        """Records already in the table, or repeated in the logs (e.g. a retried batch)."""
        return self.lines - self.torn - self.damaged - self.new


def quarantine_path(settings: Settings) -> Path:
    """Where ingest keeps damaged log lines (JSON lines: segment, offset, line number, the bytes as hex)."""
    return settings.home / "quarantine" / "log_lines.jsonl"


def _quarantine(settings: Settings, damaged: list[DamagedLine]) -> Path:
    """Append each damaged line not kept yet (by segment and offset) to the quarantine file, durably."""
    path = quarantine_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = set()
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                row = json.loads(line)
                kept.add((row["segment"], row["offset"]))
            except (ValueError, KeyError, TypeError):
                continue
    new = [d for d in damaged if (str(d.segment), d.offset) not in kept]
    if new:
        with open(path, "a") as handle:
            for d in new:
                row = {"segment": str(d.segment), "offset": d.offset, "line": d.line_number, "hex": d.data.hex()}
                handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return path


def ingest_logs(settings: Settings) -> str:
    """Load every log segment into ops.impressions / ops.events in one transaction; returns a one-line summary.

    A damaged line in the middle of a segment (not the torn tail a crash leaves) is loaded as nothing,
    kept in the quarantine file with its segment and offset, and, after everything else is committed,
    makes this raise so the operator sees it (the CLI exits non-zero).
    """
    plans = [(target, segment_paths(settings.logs_dir, target.stream)) for target in TARGETS]
    if not any(paths for _, paths in plans):
        return f"no log segments under {settings.logs_dir}: nothing to ingest"
    damaged = {target.stream: [d for path in paths for d in damaged_lines(path)] for target, paths in plans}
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: run `streamrec init` first")
    with connect(settings) as con:
        for target, _ in plans:
            if not table_exists(con, Base.metadata.schema or "ops", target.table.name):
                raise StreamRecError(
                    f"{settings.warehouse_path} has no table {target.table.fullname}: run `streamrec init` first"
                )
        con.execute("set TimeZone = 'UTC'")
        with transaction(con):
            results = []
            with progress("ingesting log segments", sum(len(paths) for _, paths in plans)) as advance:
                for target, paths in plans:
                    results.append(_ingest_stream(con, target, paths, len(damaged[target.stream])))
                    advance(len(paths))
    summary = "ingested " + "; ".join(
        f"{r.stream}: {r.new} new, {r.duplicates} duplicates skipped, {r.torn} torn lines skipped "
        f"({r.segments} segments)"
        for r in results
    )
    every = [d for found in damaged.values() for d in found]
    if every:
        kept = _quarantine(settings, every)
        first = every[0]
        raise StreamRecError(
            f"{summary}; but {len(every)} damaged line(s) in the middle of log segments (not a torn tail), first "
            f"{first.segment} line {first.line_number} at byte {first.offset}: not loaded, kept in {kept}; "
            "the segment was altered after it was written (disk or copy damage)"
        )
    return summary


def _ingest_stream(
    con: duckdb.DuckDBPyConnection, target: StreamTarget, paths: list[Path], damaged: int = 0
) -> StreamResult:
    result = StreamResult(stream=target.stream, segments=len(paths), damaged=damaged)
    if not paths:
        return result
    staged = f"staged_{target.stream}"
    columns = target.columns
    columns_sql = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"
    con.execute(
        f"create or replace temp table {staged} as "
        f"select * from read_json(?, format = 'newline_delimited', columns = {columns_sql}, "
        f"ignore_errors = true, filename = 'segment')",
        [[str(path) for path in paths]],
    )
    all_null = " and ".join(f"{name} is null" for name in columns)
    result.lines = scalar(con, f"select count(*) from {staged}")
    result.torn = max(0, scalar(con, f"select count(*) from {staged} where {all_null}") - damaged)
    con.execute(f"delete from {staged} where {all_null}")
    _check_required(con, target, staged)

    key = ", ".join(target.key)
    names = ", ".join(columns)
    before = scalar(con, f"select count(*) from {target.table.fullname}")
    # distinct on: a key repeated in the logs (a retried batch) loads once, the copy from the oldest segment.
    con.execute(
        f"insert into {target.table.fullname} ({names}) "
        f"select {names} from (select distinct on ({key}) * from {staged} order by {key}, segment) as s "
        f"anti join {target.table.fullname} as t using ({key})"
    )
    result.new = scalar(con, f"select count(*) from {target.table.fullname}") - before
    con.execute(f"drop table {staged}")
    return result


def _check_required(con: duckdb.DuckDBPyConnection, target: StreamTarget, staged: str) -> None:
    # A missing or mistyped required field reads as NULL; refuse the whole ingest and say where, so nothing half-loads.
    for name in target.required:
        rows = fetchall(
            con,
            f"select segment, {', '.join(target.key)} from {staged} where {name} is null limit 1",
        )
        if rows:
            segment, *key = rows[0]
            key_text = ", ".join(f"{k}={v!r}" for k, v in zip(target.key, key, strict=True))
            raise StreamRecError(
                f"{segment}: a {target.stream} record ({key_text}) has no valid {name!r} "
                f"(missing or not a {target.columns[name]}); nothing was ingested"
            )
