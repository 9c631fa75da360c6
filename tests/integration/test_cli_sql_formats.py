"""`streamrec sql --format/--output/--param`: analyst output formats on a real warehouse file, via the real CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from streamrec.core.settings import Settings

WIDE_COLUMNS = [f"user_feature_number_{i:02d}_score" for i in range(12)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sql_formats") / "home"
    subprocess.run([sys.executable, "-m", "streamrec", "init"], env=_env(home), check=True, capture_output=True)
    with duckdb.connect(str(Settings(home=home).warehouse_path)) as con:
        con.execute("create schema if not exists scratch")
        columns = ", ".join(f"{name} double" for name in WIDE_COLUMNS)
        con.execute(f"create table scratch.wide (user_id bigint, as_of timestamp, note varchar, {columns})")
        for user in (41, 42):
            values = ", ".join(str(user + i / 100) for i in range(len(WIDE_COLUMNS)))
            con.execute(
                f"insert into scratch.wide values ({user}, timestamp '2026-01-0{user - 40} 00:00', 'a|b', {values})"
            )
        con.execute("insert into scratch.wide (user_id) values (43)")
    return home


def _env(home: Path, columns: int = 200) -> dict[str, str]:
    return {**os.environ, "STREAMREC_HOME": str(home), "COLUMNS": str(columns)}


def _sql(home: Path, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec", "sql", *args], env=_env(home, columns), capture_output=True, text=True
    )


def test_a_wide_row_turns_vertical_with_every_header_whole(home: Path) -> None:
    done = _sql(home, "select * from scratch.wide where user_id = 42")
    assert done.returncode == 0, done.stderr
    assert "-[ row 1 ]" in done.stdout and "…" not in done.stdout
    for name in WIDE_COLUMNS:
        assert f"{name} | " in done.stdout
    assert "user_id".ljust(len(WIDE_COLUMNS[0])) + " | 42\n" in done.stdout


def test_a_narrow_result_stays_a_table(home: Path) -> None:
    done = _sql(home, "select user_id, note from scratch.wide order by user_id")
    assert done.returncode == 0, done.stderr
    assert "user_id" in done.stdout and "┃" in done.stdout and "-[ row" not in done.stdout
    assert "NULL" in done.stdout  # user 43 has no note


def test_csv_json_markdown_and_vertical(home: Path) -> None:
    query = "select user_id, as_of, note from scratch.wide order by user_id"
    rows = list(csv.DictReader(io.StringIO(_sql(home, query, "--format", "csv").stdout)))
    assert [r["user_id"] for r in rows] == ["41", "42", "43"]
    assert rows[0]["as_of"] == "2026-01-01T00:00:00" and rows[0]["note"] == "a|b" and rows[2]["note"] == ""

    records = json.loads(_sql(home, query, "--format", "json").stdout)
    assert records[1] == {"user_id": 42, "as_of": "2026-01-02T00:00:00", "note": "a|b"}
    assert records[2]["note"] is None

    markdown = _sql(home, query, "--format", "markdown").stdout.splitlines()
    assert markdown[0] == "| user_id | as_of | note |" and markdown[1] == "|---|---|---|"
    assert markdown[2] == "| 41 | 2026-01-01 00:00:00 | a\\|b |"

    vertical = _sql(home, query, "-f", "vertical").stdout
    assert vertical.count("-[ row") == 3


def test_output_file_and_bind_parameters(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "users.csv"
    done = _sql(
        home,
        "select user_id from scratch.wide where user_id >= ? and note = ?",
        "-p",
        "42",
        "-p",
        "a|b",
        "-o",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "wrote 1 rows (table) to" in done.stderr
    assert "42" in target.read_text()

    named = _sql(home, "select $who as who, $n + 1 as n", "--param", "who=ann", "--param", "n=41", "-f", "json")
    assert json.loads(named.stdout) == [{"who": "ann", "n": 42}]
    quoted = _sql(home, "select ? as v", "--param", '"007"', "-f", "json")
    assert json.loads(quoted.stdout) == [{"v": "007"}]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("select 1", "--format", "xml"), "--format 'xml': expected one of table, vertical, csv, json, markdown"),
        (("select ?",), "query failed:"),
        (("select ?", "-p", "a=1", "-p", "2"), "--param: give all parameters as NAME=VALUE"),
    ],
)
def test_bad_options_are_one_error_line(home: Path, args: tuple[str, ...], needle: str) -> None:
    done = _sql(home, *args)
    assert done.returncode == 1 and needle in done.stderr and "Traceback" not in done.stderr
