"""How `streamrec sql` shows a result: table, vertical, csv, json or markdown, on the terminal or into a file.

The query itself runs elsewhere (read-only, on the published warehouse); this module only turns
column names and rows into text. `table` falls back to `vertical` (one `column | value` line per
field, like psql's `\\x`) when the table would not fit the terminal, so wide rows such as
`select * from features.user_features` stay readable instead of every header being cut to `user…`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from streamrec.core.errors import StreamRecError

Format = Literal["table", "vertical", "csv", "json", "markdown"]
FORMATS: tuple[str, ...] = ("table", "vertical", "csv", "json", "markdown")


def parse_params(values: Sequence[str]) -> list[Any] | dict[str, Any]:
    """`--param` values as DuckDB bind values: `42`, `name=42` (for `$name`); JSON scalars are typed, the rest text.

    All positional (`?`, `$1`) or all named (`$name`): mixing them is an error, as it is in DuckDB.
    """
    named = [v for v in values if "=" in v and v.split("=", 1)[0].isidentifier()]
    if named and len(named) != len(values):
        raise StreamRecError("--param: give all parameters as NAME=VALUE (for $NAME) or none of them (for ? and $1)")
    if named:
        return {name: _scalar(value) for name, value in (v.split("=", 1) for v in values)}
    return [_scalar(v) for v in values]


def _scalar(text: str) -> Any:
    # 42 -> int, 0.5 -> float, true/null -> bool/None, "42" (quoted) -> the string "42"; anything else as written.
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, list | dict):
        return text
    return value


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def table_width(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Columns a rich table of these rows needs without cutting any cell (borders and padding included)."""
    widths = [len(name) for name in names]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(_text(value)))
    return sum(widths) + 3 * len(widths) + 1


def render_csv(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header row; NULL is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if v is None else _json_value(v) for v in row])
    return buffer.getvalue()


def render_json(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A JSON array of objects, one per row; timestamps as ISO 8601, NULL as null."""
    records = [{name: _json_value(v) for name, v in zip(names, row, strict=True)} for row in rows]
    return json.dumps(records, indent=1, allow_nan=True) + "\n"


def render_markdown(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in values escaped)."""

    def cell(value: Any) -> str:
        return _text(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(n) for n in names) + " |", "|" + "|".join("---" for _ in names) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_vertical(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """One block per row, one `column | value` line per field (psql's expanded display)."""
    pad = max((len(n) for n in names), default=0)
    blocks = []
    for number, row in enumerate(rows, start=1):
        lines = [f"-[ row {number} ]" + "-" * max(pad - 6, 4)]
        lines += [f"{name.ljust(pad)} | {_text(value)}" for name, value in zip(names, row, strict=True)]
        blocks.append("\n".join(lines))
    return ("\n".join(blocks) + "\n") if blocks else "(0 rows)\n"


def render_table(names: Sequence[str], rows: Sequence[Sequence[Any]], width: int) -> str:
    """A boxed table, the whole of every header and cell: it needs `table_width` columns."""
    table = Table(*names)
    for row in rows:
        table.add_row(*(_text(v) for v in row))
    buffer = io.StringIO()
    Console(file=buffer, width=max(width, table_width(names, rows)), color_system=None).print(table)
    return buffer.getvalue()


def render(names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, width: int) -> tuple[str, str]:
    """The text for `fmt` and the format actually used (`table` becomes `vertical` when wider than `width`)."""
    if fmt not in FORMATS:
        raise StreamRecError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "table" and names and table_width(names, rows) > width:
        fmt = "vertical"
    if fmt == "table":
        return render_table(names, rows, width), fmt
    if fmt == "vertical":
        return render_vertical(names, rows), fmt
    if fmt == "csv":
        return render_csv(names, rows), fmt
    if fmt == "json":
        return render_json(names, rows), fmt
    return render_markdown(names, rows), fmt


def emit(names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, output: Path | None, console: Console) -> str:
    """Print the result (or write it to `output`, saying where); returns the format used."""
    width = console.width if output is None else 1 << 30  # a file is never too narrow
    text, used = render(names, rows, fmt, width)
    if output is None:
        console.file.write(text)
        console.file.flush()
        return used
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    except OSError as exc:
        raise StreamRecError(f"--output {output}: {exc.strerror or exc}") from None
    Console(stderr=True).print(f"wrote {len(rows)} rows ({used}) to {output}", highlight=False)
    return used
