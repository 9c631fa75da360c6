"""ADR 0008: raw lives in its own file, which a build attaches read-only and never copies.

A build must leave the raw file byte for byte as it was and put no raw table into the warehouse it
publishes; a home from before the split (raw as a schema inside `warehouse.duckdb`) is moved on the
first writer's open, also when a crash interrupted an earlier move, with every row kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from streamrec.core.settings import Settings
from tests.faults.conftest import assert_no_traceback, cli, fingerprint

pytestmark = pytest.mark.slow

SELECT = "stg_raw__creators"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _schemas(warehouse: Path) -> set[str]:
    con = duckdb.connect(str(warehouse), read_only=True)  # no attach: what the file itself holds
    try:
        return {row[0] for row in con.execute("select schema_name from information_schema.schemata").fetchall()}
    finally:
        con.close()


def _to_legacy_layout(settings: Settings, tables: list[str] | None = None) -> None:
    """Put raw back into the warehouse as schema `raw` (the layout before ADR 0008) and remove the raw file.

    With `tables`, the raw file is kept holding only those tables: a move that crashed after copying them.
    """
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute(f"attach '{settings.raw_path}' as raw_file (read_only)")
        names = [
            r[0]
            for r in con.execute("select table_name from duckdb_tables() where database_name = 'raw_file'").fetchall()
        ]
        con.execute("create schema raw")  # unambiguous here: the raw file is attached as raw_file
        for name in names:
            con.execute(f'create table raw."{name}" as from raw_file.main."{name}"')
    finally:
        con.close()
    if tables is None:
        settings.raw_path.unlink()
        return
    keep = duckdb.connect(str(settings.raw_path))
    try:
        stored = [r[0] for r in keep.execute("select table_name from duckdb_tables()").fetchall()]
        for name in stored:
            if name not in tables:
                keep.execute(f'drop table main."{name}"')
    finally:
        keep.close()


def test_build_never_copies_or_changes_the_raw_file(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    before = _sha256(settings.raw_path)
    done = cli(settings.home, "build", "--select", SELECT)
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _sha256(settings.raw_path) == before
    assert "raw" not in _schemas(settings.warehouse_path)  # the published (copied) file holds no raw table
    staged = cli(
        settings.home,
        "sql",
        "select count(*) = (select count(*) from raw.creators) as same from staging.stg_raw__creators",
    )
    assert staged.returncode == 0 and "True" in staged.stdout, staged.stdout + staged.stderr


def test_a_home_from_before_the_split_is_moved_with_every_row(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    expected = {k: v for k, v in fingerprint(settings.warehouse_path).items() if k.startswith("raw.")}
    _to_legacy_layout(settings)
    assert not settings.raw_path.exists() and "raw" in _schemas(settings.warehouse_path)
    read = cli(settings.home, "sql", "select count(*) from raw.interactions")  # readers work before the move
    assert read.returncode == 0, read.stderr

    done = cli(settings.home, "init")
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "raw" not in _schemas(settings.warehouse_path)
    assert {k: v for k, v in fingerprint(settings.warehouse_path).items() if k.startswith("raw.")} == expected
    built = cli(settings.home, "build", "--select", SELECT)
    assert built.returncode == 0, built.stderr[-2000:]


def test_a_move_interrupted_after_its_copy_is_finished_by_the_next_writer(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    expected = {k: v for k, v in fingerprint(settings.warehouse_path).items() if k.startswith("raw.")}
    _to_legacy_layout(settings, tables=["creators"])  # the crash: one table copied, the schema not dropped

    ambiguous = cli(settings.home, "sql", "select count(*) from raw.creators")
    assert_no_traceback(ambiguous)
    assert ambiguous.returncode == 1 and "Ambiguous" in ambiguous.stderr  # refused by name, never half-read

    done = cli(settings.home, "build", "--select", SELECT)  # any writer finishes the move first
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "raw" not in _schemas(settings.warehouse_path)
    assert {k: v for k, v in fingerprint(settings.warehouse_path).items() if k.startswith("raw.")} == expected
