"""`streamrec load events`: append a team's own Parquet or CSV files to the raw schema, idempotently.

A load takes a file, a directory (its `*.parquet` and `*.csv`) or a glob. Each file belongs to one raw
table (`--table`, else the file name: `interactions.parquet`, `interactions_2025-06-01.csv`); its columns
are those of `streamrec/core/raw_schema.py`, after an optional mapping YAML renames a team's columns and
converts their units (`watch_ms: {column: watch_seconds, scale: 0.001}`), so the contract's units hold
from the door on.

Everything is validated before anything is written: every column present and castable to its raw type,
keys and required columns non-null, numbers finite, durations non-negative, event types known, keys unique,
references resolvable, event times inside the late-event window. A refusal is one StreamRecError naming
the file, the row (the line, for CSV) and the column, and then nothing is written. The write to raw is
one transaction for all files: rows whose key is already stored with the same values are skipped (loading
a file twice changes nothing; a file whose checksum was loaded before is not even read), a stored key with
different values refuses the whole load naming the first conflicting key, and each file gets a row in
`ops.raw_loads` (path, rows, event-time range, sha256), which `dbt source freshness` reads.
"""

from __future__ import annotations

import glob
import hashlib
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import yaml

from streamrec.batch.raw_load import invalidate_incremental
from streamrec.core.errors import StreamRecError
from streamrec.core.event_types import INTERACTION_EVENT_TYPES, sql_list
from streamrec.core.raw_schema import PRIMARY_KEYS, RAW_TABLES, create_table_sql
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, scalar, table_exists, transaction

# The time column of each raw table: what ops.raw_loads records as the file's event-time range.
TIME_COLUMNS: Mapping[str, str] = {
    "users": "signup_ts",
    "creators": "created_ts",
    "items": "published_ts",
    "sessions": "started_ts",
    "interactions": "event_ts",
}
# Tables of events, where a row older than the late-event window is refused (entities may be backdated).
EVENT_TABLES = ("sessions", "interactions")
# Columns a source may leave out or leave empty (raw_schema says NULL where the source has none).
NULLABLE: Mapping[str, frozenset[str]] = {"interactions": frozenset({"session_id", "position", "rating"})}
# Parents before children, so a file's references may point at rows another file of the same load adds.
LOAD_ORDER = ("creators", "items", "users", "sessions", "interactions")
REFERENCES: Mapping[str, Sequence[tuple[str, str, str]]] = {
    "items": [("creator_id", "creators", "creator_id")],
    "sessions": [("user_id", "users", "user_id")],
    "interactions": [
        ("user_id", "users", "user_id"),
        ("item_id", "items", "item_id"),
        ("session_id", "sessions", "session_id"),
    ],
}
SUFFIXES = (".parquet", ".csv")
DEFAULT_LATE_DAYS = 7
# dbt_project.yml's var incremental_lookback_days: an appended event older than this before the newest stored
# one is outside what the incremental per-day models recompute, so the load drops them (a full rebuild next).
INCREMENTAL_LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class ColumnMap:
    """One mapping entry: the team's column `source` becomes raw column `target`, times `scale`."""

    source: str
    target: str
    scale: float | None = None


@dataclass(frozen=True)
class ColumnMapping:
    """A parsed mapping YAML: entries for every table (flat file) or per table (top-level table names)."""

    common: tuple[ColumnMap, ...] = ()
    per_table: Mapping[str, tuple[ColumnMap, ...]] = field(default_factory=dict)

    def for_table(self, table: str) -> tuple[ColumnMap, ...]:
        """The entries that apply to a file of `table`."""
        return self.common + self.per_table.get(table, ())


@dataclass
class _Staged:
    """One validated file, held as a temporary table `name` (columns of its raw table plus `_row`)."""

    path: Path
    table: str
    name: str
    sha256: str
    rows: int
    is_csv: bool
    min_ts: datetime | None = None
    max_ts: datetime | None = None
    inserted: int = 0

    def where(self, row: int, column: str | None = None) -> str:
        """'file.csv line 12, column c' (CSV lines count the header) or 'file.parquet row 11, column c'."""
        place = f"{self.path.name} line {row + 1}" if self.is_csv else f"{self.path.name} row {row}"
        return f"{place}, column {column}" if column else place


def read_mapping(path: Path | None) -> ColumnMapping:
    """Parse a mapping YAML; every refusal names the file and the entry."""
    if path is None:
        return ColumnMapping()
    if not path.is_file():
        raise StreamRecError(f"{path}: mapping file not found")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StreamRecError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if document is None:
        return ColumnMapping()
    if not isinstance(document, dict):
        raise StreamRecError(f"{path.name}: expected a mapping of `source_column: {{column: raw_column, scale: x}}`")
    if document and all(key in RAW_TABLES and isinstance(value, dict) for key, value in document.items()):
        per_table = {table: _entries(path, entries, (table,)) for table, entries in document.items()}
        return ColumnMapping(per_table=per_table)
    return ColumnMapping(common=_entries(path, document, tuple(RAW_TABLES)))


def _entries(path: Path, document: dict, tables: Sequence[str]) -> tuple[ColumnMap, ...]:
    known = {column: dtype for table in tables for column, dtype in RAW_TABLES[table].items()}
    entries = []
    for source, spec in (document or {}).items():
        if isinstance(spec, str):
            spec = {"column": spec}
        if not isinstance(spec, dict) or set(spec) - {"column", "scale"} or "column" not in spec:
            raise StreamRecError(
                f"{path.name}, entry {source}: expected `{{column: raw_column}}` or `{{column: raw_column, scale: x}}`"
            )
        target = str(spec["column"])
        if target not in known:
            raise StreamRecError(
                f"{path.name}, entry {source}: {target!r} is not a raw column of {', '.join(tables)} "
                "(see streamrec/core/raw_schema.py)"
            )
        scale = spec.get("scale")
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
                raise StreamRecError(f"{path.name}, entry {source}: scale {scale!r} is not a positive number")
            if known[target] not in ("DOUBLE", "BIGINT", "INTEGER"):
                raise StreamRecError(
                    f"{path.name}, entry {source}: scale applies to numbers, {target} is {known[target]}"
                )
        entries.append(ColumnMap(str(source), target, None if scale is None else float(scale)))
    return tuple(entries)


def resolve_files(location: str) -> list[Path]:
    """The Parquet/CSV files a location names: one file, every such file of a directory, or a glob's matches."""
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise StreamRecError(f"{path}: no .parquet or .csv files in this directory")
        return files
    if path.is_file():
        files = [path]
    elif glob.has_magic(location):
        files = sorted(Path(p) for p in glob.glob(location) if Path(p).is_file())
        if not files:
            raise StreamRecError(f"{location}: the pattern matches no file")
    else:
        raise StreamRecError(f"{location}: no such file or directory")
    for file in files:
        if file.suffix.lower() not in SUFFIXES:
            raise StreamRecError(f"{file}: not a .parquet or .csv file")
    return files


def table_of(path: Path, table: str | None) -> str:
    """The raw table a file loads into: the given one, else the one its name starts with."""
    if table is not None:
        if table not in RAW_TABLES:
            raise StreamRecError(f"--table {table!r} is not a raw table (one of {', '.join(RAW_TABLES)})")
        return table
    stem = path.name.lower().split(".")[0]
    for name in RAW_TABLES:
        if stem == name or stem.startswith((f"{name}_", f"{name}-")):
            return name
    raise StreamRecError(
        f"{path.name}: cannot tell its raw table from the name; name it like interactions_2025-06-01.parquet or "
        f"pass --table (one of {', '.join(RAW_TABLES)})"
    )


def sha256_of(path: Path) -> str:
    """The file's sha256 (hex), read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "UTINYINT",
                 "USMALLINT", "UINTEGER", "UBIGINT")  # fmt: skip


def _open_source(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, str, str | None]:
    """(FROM clause, 1-based row expression, registered Arrow name) of a file, read by DuckDB.

    Parquet is scanned by DuckDB in parallel, straight from the file (`file_row_number` gives the row);
    CSV goes through pyarrow's reader, whose row order is the file's, so the line of a row is known.
    """
    try:
        if path.suffix.lower() == ".parquet":
            quoted = str(path).replace("'", "''")
            source = f"read_parquet('{quoted}', file_row_number = true)"
            con.execute(f"describe select * from {source}").fetchall()  # fails here on a damaged file
            return source, "file_row_number + 1", None
        data = pa_csv.read_csv(path)
    except (pa.ArrowInvalid, OSError, duckdb.Error) as exc:
        kind = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
        raise StreamRecError(f"{path.name}: cannot read as {kind} ({str(exc).strip().splitlines()[0]})") from None
    name = f"_csv_{uuid.uuid4().hex}"
    con.register(name, data.append_column("_row", pa.array(range(1, data.num_rows + 1), pa.int64())))
    return name, "_row", name


def _mapped_view(
    con: duckdb.DuckDBPyConnection, path: Path, source: str, row: str, entries: Sequence[ColumnMap]
) -> tuple[str, list[str]]:
    """A temporary view of the file with the mapping applied (renames, scales) and `_row`; its column names."""
    described = [
        (name, kind)
        for name, kind, *_ in fetchall(con, f"describe select * from {source}")
        if name not in ("_row", "file_row_number")
    ]
    by_source = {entry.source: entry for entry in entries}
    names = [by_source[name].target if name in by_source else name for name, _ in described]
    expressions = []
    for name, kind in described:
        entry = by_source.get(name)
        if entry is None:
            expressions.append(f'"{name}"')
            continue
        if entry.target != name and entry.target in [n for n, _ in described]:
            raise StreamRecError(
                f"{path.name}, column {name}: the mapping renames it to {entry.target}, which the file already has"
            )
        if entry.scale is None:
            expressions.append(f'"{name}" as "{entry.target}"')
        elif kind.split("(")[0] in NUMERIC_TYPES:
            expressions.append(f'cast("{name}" as double) * {entry.scale!r} as "{entry.target}"')
        else:
            raise StreamRecError(f"{path.name}, column {name}: the mapping scales it, but it holds {kind}, not numbers")
    view = f"_src_{uuid.uuid4().hex}"
    con.execute(f"create temp view {view} as select {', '.join(expressions)}, {row} as _row from {source}")
    return view, names


def _stage(con: duckdb.DuckDBPyConnection, path: Path, table: str, mapping: ColumnMapping, digest: str) -> _Staged:
    """Read, map, check and cast one file into a temporary table; raise naming file, row and column."""
    source, row, registered = _open_source(con, path)
    view = None
    try:
        view, names = _mapped_view(con, path, source, row, mapping.for_table(table))
        schema = RAW_TABLES[table]
        nullable = NULLABLE.get(table, frozenset())
        present = set(names)
        missing = [c for c in schema if c not in present and c not in nullable]
        if missing:
            raise StreamRecError(
                f"{path.name}, column {missing[0]}: missing (raw.{table} needs "
                f"{', '.join(c for c in schema if c not in nullable)}; found {', '.join(names) or 'no columns'})"
            )
        staged = _Staged(path, table, f"_load_{uuid.uuid4().hex}", digest, 0, path.suffix.lower() == ".csv")
        _check_columns(con, staged, view, present)
        casts = ", ".join(
            f'try_cast("{c}" as {dtype}) as {c}' if c in present else f"cast(null as {dtype}) as {c}"
            for c, dtype in schema.items()
        )
        con.execute(f"create temp table {staged.name} as select _row, {casts} from {view}")
    finally:
        if view is not None:
            con.execute(f"drop view if exists {view}")
        if registered is not None:
            con.unregister(registered)
    # One scan for the summary and the key count (exact repeats dropped below keep both extremes).
    time_column = TIME_COLUMNS[table]
    rows, keys, staged.min_ts, staged.max_ts = fetchall(
        con,
        f"select count(*), count(distinct {PRIMARY_KEYS[table]}), min({time_column}), max({time_column}) "
        f"from {staged.name}",
    )[0]
    staged.rows = int(rows)
    if keys != rows:
        _check_rows(con, staged)
    return staged


def _check_columns(con: duckdb.DuckDBPyConnection, staged: _Staged, source: str, present: set[str]) -> None:
    """One scan finds, per column, the first row that is empty where required, uncastable, infinite or negative."""
    table = staged.table
    nullable = NULLABLE.get(table, frozenset())
    probes: list[tuple[str, str, str]] = []  # (column, problem, SQL condition on the source row)
    for column, dtype in RAW_TABLES[table].items():
        if column not in present:
            continue
        quoted = f'"{column}"'
        cast = f"try_cast({quoted} as {dtype})"
        if column not in nullable:
            probes.append((column, "is empty (required)", f"{quoted} is null"))
        probes.append((column, f"is not a {dtype}", f"{quoted} is not null and {cast} is null"))
        if dtype == "DOUBLE":
            probes.append((column, "is not a finite number", f"{cast} is not null and not isfinite({cast})"))
        if column.endswith("_seconds"):
            probes.append((column, "is negative (a duration)", f"{cast} < 0"))
    if table == "interactions" and "event_type" in present:
        probes.append(
            (
                "event_type",
                f"is not an event type (one of {', '.join(INTERACTION_EVENT_TYPES)})",
                f'"event_type" is not null and "event_type" not in {sql_list(INTERACTION_EVENT_TYPES)}',
            )
        )
    if not probes:
        return
    firsts = ", ".join(f"min(_row) filter (where {condition})" for _, _, condition in probes)
    rows = fetchall(con, f"select {firsts} from {source}")[0]
    found = [(row, probe) for row, probe in zip(rows, probes, strict=True) if row is not None]
    if not found:
        return
    row, (column, problem, _) = min(found, key=lambda pair: pair[0])
    value = scalar(con, f'select cast("{column}" as varchar) from {source} where _row = ?', [row])
    shown = "empty" if value is None else repr(value)
    raise StreamRecError(f"{staged.where(row, column)}: {shown} {problem}; nothing was loaded")


def _check_rows(con: duckdb.DuckDBPyConnection, staged: _Staged) -> None:
    """A key repeated inside the file with different values is refused; exact repeats are dropped.

    Called only when the file repeats a key (the usual case, no repeat, is decided by `_stage`'s count).
    """
    key = PRIMARY_KEYS[staged.table]
    columns = list(RAW_TABLES[staged.table])
    clash = fetchall(
        con,
        f"select {key}, min(_row), max(_row) from (select distinct on ({', '.join(columns)}) * from {staged.name}) "
        f"group by {key} having count(*) > 1 order by 3 limit 1",
    )
    if clash:
        value, first, second = clash[0]
        raise StreamRecError(
            f"{staged.where(second, key)}: duplicate key ({key}={value}) with different values than "
            f"{staged.where(first)}; nothing was loaded"
        )
    con.execute(
        f"delete from {staged.name} where _row in (select _row from {staged.name} "
        f"qualify row_number() over (partition by {key} order by _row) > 1)"
    )


@dataclass(frozen=True)
class LoadSummary:
    """What one `streamrec load events` did, per file."""

    files: list[tuple[str, str, int, int]]  # (file name, table, rows in file, rows inserted)
    skipped: list[str]  # files whose checksum was already loaded

    def __str__(self) -> str:
        inserted = sum(f[3] for f in self.files)
        rows = sum(f[2] for f in self.files)
        parts = [f"loaded {len(self.files)} file(s): {rows:,} rows read, {inserted:,} new"]
        by_table: dict[str, int] = {}
        for _, table, _, new in self.files:
            by_table[table] = by_table.get(table, 0) + new
        if by_table:
            parts.append(", ".join(f"raw.{t} +{n:,}" for t, n in by_table.items()))
        if self.skipped:
            parts.append(f"{len(self.skipped)} already loaded (same checksum), skipped")
        return "; ".join(parts)


def load_events(
    settings: Settings,
    locations: Sequence[str],
    table: str | None = None,
    mapping_path: Path | None = None,
    late_days: float = DEFAULT_LATE_DAYS,
) -> LoadSummary:
    """Append the files at `locations` to raw in one transaction (see the module docstring); return a summary."""
    if late_days < 0:
        raise StreamRecError(f"--late-days {late_days} must be 0 or more")
    mapping = read_mapping(mapping_path)
    files: list[tuple[Path, str]] = []
    for location in locations:
        for path in resolve_files(location):
            if path not in [f for f, _ in files]:
                files.append((path, table_of(path, table)))
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: run `streamrec init` first")
    with connect(settings, write_raw=True) as con:
        if not table_exists(con, "ops", "raw_loads"):
            raise StreamRecError("ops.raw_loads is missing: run `streamrec init` (alembic upgrade head) first")
        loaded = {(t, s) for t, s in fetchall(con, "select table_name, sha256 from ops.raw_loads")}
        staged: list[_Staged] = []
        skipped: list[str] = []
        seen_digests: set[tuple[str, str]] = set()
        try:
            for path, file_table in files:
                digest = sha256_of(path)
                if (file_table, digest) in loaded or (file_table, digest) in seen_digests:
                    skipped.append(path.name)
                    continue
                seen_digests.add((file_table, digest))
                try:
                    staged.append(_stage(con, path, file_table, mapping, digest))
                except duckdb.Error as exc:  # a column DuckDB cannot even try to cast (a list, a struct)
                    message = str(exc).strip().splitlines()[0]
                    raise StreamRecError(
                        f"{path.name}: cannot read into raw.{file_table} ({message}); nothing was loaded"
                    ) from None
            try:
                _write(con, staged, timedelta(days=late_days), invalidated=False)
            except _LateForLookback:
                # Raw and the per-day tables are two files (two transactions, ADR 0008): drop the per-day
                # tables first, then append again, so a crash in between costs a full recompute, never
                # stale days. The first attempt was rolled back, so nothing was appended twice.
                with transaction(con):
                    invalidate_incremental(con)
                _write(con, staged, timedelta(days=late_days), invalidated=True)
            # After raw's commit: a crash before this leaves rows whose reload inserts nothing and records them.
            with transaction(con):
                _record(con, staged)
        finally:
            for s in staged:
                con.execute(f"drop table if exists {s.name}")
    return LoadSummary([(s.path.name, s.table, s.rows, s.inserted) for s in staged], skipped)


class _LateForLookback(Exception):
    """A new event is older than the incremental lookback: the per-day tables must be dropped first."""


def _write(con: duckdb.DuckDBPyConnection, staged: list[_Staged], late: timedelta, invalidated: bool) -> None:
    """Append every staged file to raw in one transaction (rolled back whole on any refusal).

    Raises _LateForLookback, with nothing written, when an event is older than the per-day tables'
    lookback and they were not dropped yet (`invalidated`).
    """
    with transaction(con):
        for name in RAW_TABLES:  # every raw table exists after a first load, as staging expects
            if not table_exists(con, "raw", name):
                con.execute(create_table_sql(name))
        for name in LOAD_ORDER:
            group = [s for s in staged if s.table == name]
            if group and _append(con, name, group, late) and not invalidated:
                raise _LateForLookback


def _append(con: duckdb.DuckDBPyConnection, table: str, group: list[_Staged], late: timedelta) -> bool:
    """Check one table's files against the stored rows and each other, then insert their new rows.

    Returns whether an inserted event is older than the incremental models' lookback.
    """
    older = False
    key = PRIMARY_KEYS[table]
    columns = list(RAW_TABLES[table])
    if len(group) == 1:
        batch = group[0].name
        con.execute(f"alter table {batch} add column _file integer default 0")
    else:
        batch = f"_batch_{uuid.uuid4().hex}"
        union = " union all ".join(f"select {i} as _file, * from {s.name}" for i, s in enumerate(group))
        con.execute(f"create temp table {batch} as {union}")
    try:
        stored = scalar(con, f"select count(*) from raw.{table}")
        differs = " or ".join(f"b.{c} is distinct from r.{c}" for c in columns if c != key)
        if stored:
            _refuse_conflict(
                con,
                group,
                table,
                f"select b._file, b._row, b.{key} from {batch} b join raw.{table} r on b.{key} = r.{key} "
                f"where {differs} order by b._file, b._row limit 1",
                "stored",
            )
        # Keys repeated across this load's files: the same values are one row, different values a conflict.
        first = batch
        if len(group) > 1 and scalar(con, f"select count(*) - count(distinct {key}) from {batch}"):
            first = f"(select * from {batch} qualify row_number() over (partition by {key} order by _file, _row) = 1)"
            _refuse_conflict(
                con,
                group,
                table,
                f"select b._file, b._row, b.{key} from {batch} b join {first} f on b.{key} = f.{key} "
                f"where ({' or '.join(f'b.{c} is distinct from f.{c}' for c in columns if c != key)}) "
                "order by b._file, b._row limit 1",
                "in an earlier file of this load",
            )
        fresh = f"_fresh_{uuid.uuid4().hex}"
        if stored:
            con.execute(
                f"create temp table {fresh} as select * from {first} f anti join raw.{table} r on f.{key} = r.{key}"
            )
        else:
            fresh = first if first == batch else fresh
            if fresh != batch:
                con.execute(f"create temp table {fresh} as select * from {first} f")
        try:
            if table in EVENT_TABLES:
                _refuse_late(con, group, table, fresh, late)
                older = _older_than_lookback(con, table, fresh)
            for column, parent, parent_key in REFERENCES.get(table, ()):
                orphan = fetchall(
                    con,
                    f"select f._file, f._row, f.{column} from {fresh} f anti join raw.{parent} p "
                    f"on f.{column} = p.{parent_key} where f.{column} is not null order by f._file, f._row limit 1",
                )
                if orphan:
                    where = group[orphan[0][0]].where(orphan[0][1], column)
                    raise StreamRecError(
                        f"{where}: {column} {orphan[0][2]} is not in raw.{parent} (load its file first, or in the "
                        "same load); nothing was loaded"
                    )
            con.execute(f"insert into raw.{table} ({', '.join(columns)}) select {', '.join(columns)} from {fresh}")
            for index, count in fetchall(con, f"select _file, count(*) from {fresh} group by _file"):
                group[index].inserted = count
        finally:
            if fresh != batch:
                con.execute(f"drop table if exists {fresh}")
    finally:
        if len(group) > 1:
            con.execute(f"drop table if exists {batch}")
    return older


def _refuse_conflict(
    con: duckdb.DuckDBPyConnection, group: list[_Staged], table: str, query: str, against: str
) -> None:
    rows = fetchall(con, query)
    if rows:
        file_index, row, value = rows[0]
        key = PRIMARY_KEYS[table]
        raise StreamRecError(
            f"{group[file_index].where(row, key)}: {key}={value} is already {against} with different values "
            f"(raw.{table}); nothing was loaded"
        )


def _refuse_late(con: duckdb.DuckDBPyConnection, group: list[_Staged], table: str, fresh: str, late: timedelta) -> None:
    """New events older than the late-event window before the newest stored event are refused."""
    time_column = TIME_COLUMNS[table]
    newest = scalar(con, f"select max({time_column}) from raw.{table}")
    if newest is None:
        return  # the first load of this table sets the clock
    cutoff = newest - late
    rows = fetchall(
        con,
        f"select _file, _row, {time_column} from {fresh} where {time_column} < ? order by _file, _row limit 1",
        [cutoff],
    )
    if rows:
        file_index, row, moment = rows[0]
        raise StreamRecError(
            f"{group[file_index].where(row, time_column)}: {moment} is older than the late-event window "
            f"({late.total_seconds() / 86_400:g} days before the newest stored {time_column}, {newest}; "
            "--late-days widens it); nothing was loaded"
        )


def _older_than_lookback(con: duckdb.DuckDBPyConnection, table: str, fresh: str) -> bool:
    """Whether a new event is older than the incremental models' lookback before the newest stored one."""
    time_column = TIME_COLUMNS[table]
    newest = scalar(con, f"select max({time_column}) from raw.{table}")
    if newest is None:
        return False
    cutoff = newest - timedelta(days=INCREMENTAL_LOOKBACK_DAYS)
    return bool(scalar(con, f"select count(*) from {fresh} where {time_column} < ?", [cutoff]))


def _record(con: duckdb.DuckDBPyConnection, staged: list[_Staged]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    for s in staged:
        params: list[Any] = [
            uuid.uuid4().hex,
            s.table,
            str(s.path.resolve()),
            s.sha256,
            s.rows,
            s.inserted,
            s.min_ts,
            s.max_ts,
            now,
        ]
        con.execute(
            "insert into ops.raw_loads (load_id, table_name, file_path, sha256, rows_in_file, rows_inserted, "
            "min_event_ts, max_event_ts, loaded_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
