"""Shared by every data source: read and validate RecBole atomic files, and replace `raw` in one transaction.

Sources validate everything first (header, types, keys, references) and only then open the
warehouse; the write replaces all raw tables inside one transaction, so a failure at any point
leaves the warehouse exactly as it was.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from streamrec.core.errors import StreamRecError
from streamrec.core.raw_schema import PRIMARY_KEYS, RAW_TABLES, create_table_sql
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, scalar, transaction

# One field (a title, a genre list) of an atomic file: far above any real title, far below a runaway line.
MAX_FIELD_CHARS = 10_000
# RecBole's atomic-file field types this project reads (token_seq is space separated).
ATOMIC_TYPES = ("token", "float", "token_seq")


@dataclass(frozen=True)
class AtomicFile:
    """The parsed, validated content of one RecBole atomic file: columns by name and their source lines."""

    path: Path
    columns: Mapping[str, list]
    line_numbers: list[int]  # 1-based line in the file of each row (the header is line 1)

    def __len__(self) -> int:
        return len(self.line_numbers)

    def where(self, row: int, column: str) -> str:
        """'file line N, column C': the place an error message points at."""
        return f"{self.path.name} line {self.line_numbers[row]}, column {column}"


def read_atomic_file(path: Path, expected: Mapping[str, str], key: Sequence[str] = ()) -> AtomicFile:
    """Read a tab-separated RecBole atomic file, checking it against `expected` {column: type}.

    The header must declare every expected column with the expected type (`name:type`); extra
    columns are ignored. Floats must parse and be finite, tokens in `key` must not be empty,
    and `key` (one or more columns) must be unique. Every refusal is a StreamRecError naming
    the file, the 1-based line and the column.
    """
    for column, kind in expected.items():
        if kind not in ATOMIC_TYPES:
            raise ValueError(f"unsupported atomic type {kind!r} for {column}")
    if not path.is_file():
        raise StreamRecError(f"{path}: file not found")
    lines = _decoded_lines(path)
    if not lines or not lines[0].strip():
        raise StreamRecError(f"{path.name} line 1: empty file, expected a header like {_header_hint(expected)}")
    positions = _check_header(path, lines[0], expected)
    width = len(lines[0].split("\t"))
    columns: dict[str, list] = {name: [] for name in expected}
    line_numbers: list[int] = []
    seen: dict[tuple, int] = {}
    for index, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # a trailing blank line is not a row
        fields = line.split("\t")
        if len(fields) != width:
            raise StreamRecError(
                f"{path.name} line {index}: expected {width} tab-separated fields like the header, found {len(fields)}"
            )
        for name, kind in expected.items():
            columns[name].append(_parse_field(path, index, name, kind, fields[positions[name]], name in key))
        if key:
            row_key = tuple(columns[name][-1] for name in key)
            if row_key in seen:
                shown = ", ".join(f"{name}={value}" for name, value in zip(key, row_key, strict=True))
                raise StreamRecError(
                    f"{path.name} line {index}, column {'+'.join(key)}: duplicate key ({shown}), "
                    f"first on line {seen[row_key]}"
                )
            seen[row_key] = index
        line_numbers.append(index)
    return AtomicFile(path=path, columns=columns, line_numbers=line_numbers)


def _decoded_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark (Windows editors) is not part of the header
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StreamRecError(f"{path.name} line {line}: not valid UTF-8 ({exc.reason})") from None
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise StreamRecError(f"{path.name} line {line}: contains a NUL byte (not a text file, or damaged)")
    # Lines end in \n or \r\n (both accepted); splitlines also splits on \x0b, \x1c.. and U+2028, which
    # would silently break a row in two, so split on newlines only.
    return [line.removesuffix("\r") for line in text.split("\n")]


def _header_hint(expected: Mapping[str, str]) -> str:
    return "\t".join(f"{name}:{kind}" for name, kind in expected.items())


def _check_header(path: Path, header: str, expected: Mapping[str, str]) -> dict[str, int]:
    declared: dict[str, tuple[str, int]] = {}
    for position, field in enumerate(header.split("\t")):
        name, sep, kind = field.strip().partition(":")
        if not sep or not name or not kind:
            raise StreamRecError(
                f"{path.name} line 1, column {position + 1}: header field {field!r} is not `name:type` "
                f"(expected a header like {_header_hint(expected)})"
            )
        if name in declared:
            raise StreamRecError(f"{path.name} line 1, column {name}: declared twice in the header")
        declared[name] = (kind, position)
    positions: dict[str, int] = {}
    for name, kind in expected.items():
        if name not in declared:
            raise StreamRecError(
                f"{path.name} line 1, column {name}: missing from the header (expected {name}:{kind}; "
                f"found {', '.join(declared) or 'nothing'})"
            )
        found, position = declared[name]
        if found != kind:
            raise StreamRecError(
                f"{path.name} line 1, column {name}: declared as {name}:{found}, expected {name}:{kind}"
            )
        positions[name] = position
    return positions


def _parse_field(path: Path, line: int, name: str, kind: str, text: str, is_key: bool) -> object:
    if len(text) > MAX_FIELD_CHARS:
        raise StreamRecError(
            f"{path.name} line {line}, column {name}: {len(text):,} characters; the limit is {MAX_FIELD_CHARS:,}"
        )
    value = text.strip()
    if kind == "float":
        try:
            number = float(value)
        except ValueError:
            raise StreamRecError(f"{path.name} line {line}, column {name}: {text!r} is not a number") from None
        if not math.isfinite(number):
            raise StreamRecError(f"{path.name} line {line}, column {name}: {text!r} is not a finite number")
        return number
    if kind == "token_seq":
        return value.split()
    if is_key and not value:
        raise StreamRecError(f"{path.name} line {line}, column {name}: empty key")
    return value


# ---- writing --------------------------------------------------------------------------------------


@contextmanager
def replace_raw(settings: Settings, drop_schemas: tuple[str, ...] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse and start one transaction in which every raw table is recreated empty.

    The caller inserts the new data (see `insert_arrow`); leaving the block commits, and any
    exception rolls everything back, old raw data included, so a failed load changes nothing in raw.
    Raw lives in its own file (ADR 0008) and one DuckDB transaction writes one file, so what was derived
    from the old raw is dropped first, in a warehouse transaction of its own: the incremental per-day
    tables and `drop_schemas` (the generator's truth). A crash after that leaves the old raw with
    nothing stale derived from it (the next build recomputes the per-day tables whole), never new raw
    beside old derived rows.
    """
    with connect(settings, write_raw=True) as con:
        with transaction(con):
            invalidate_incremental(con)
            for schema in drop_schemas:
                con.execute(f"drop schema if exists {schema} cascade")
        with transaction(con):
            for table in RAW_TABLES:
                con.execute(f"drop table if exists raw.{table}")
                con.execute(create_table_sql(table))
            yield con
            check_raw_keys(con)


def invalidate_incremental(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop the incremental per-day tables dbt built (staging.int_*), so the next build recomputes them whole.

    Called in the transaction of a write their lookback cannot see: a replaced raw schema, or an appended
    event older than `incremental_lookback_days`. Every intermediate table is rebuilt by the next build anyway.
    """
    tables = [
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = 'staging' "
            "and table_type = 'BASE TABLE' and table_name like 'int\\_%' escape '\\'"
        ).fetchall()
    ]
    for table in tables:
        con.execute(f"drop table staging.{table}")
    return tables


def insert_arrow(con: duckdb.DuckDBPyConnection, target: str, data: pa.Table) -> None:
    """Insert an Arrow table into `target` (schema.table) by column name, casting to the table's types."""
    name = f"_arrow_{uuid.uuid4().hex}"
    con.register(name, data)
    try:
        columns = ", ".join(data.column_names)
        con.execute(f"insert into {target} ({columns}) select {columns} from {name}")
    finally:
        con.unregister(name)


def check_raw_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse raw data with a repeated key or a dangling reference (a bug in a source, never user data).

    The parsers already refuse a repeated key with its line; raw tables carry no key constraint
    (see raw_schema), so this is what guarantees uniqueness for every source.
    """
    for table, key in PRIMARY_KEYS.items():
        repeated = scalar(con, f"select {key} from raw.{table} group by {key} having count(*) > 1 limit 1")
        if repeated is not None:
            raise StreamRecError(f"raw.{table}: {key} {repeated} appears more than once")
    references = [
        ("items", "creator_id", "creators", "creator_id"),
        ("sessions", "user_id", "users", "user_id"),
        ("interactions", "user_id", "users", "user_id"),
        ("interactions", "item_id", "items", "item_id"),
        ("interactions", "session_id", "sessions", "session_id"),
    ]
    for table, column, parent, key in references:
        orphan = scalar(
            con,
            f"select t.{column} from raw.{table} t anti join raw.{parent} p on t.{column} = p.{key} "
            f"where t.{column} is not null limit 1",
        )
        if orphan is not None:
            raise StreamRecError(f"raw.{table}: {column} {orphan} is not in raw.{parent}")
