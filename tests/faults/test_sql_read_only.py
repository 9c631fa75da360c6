"""Issue 11 case 2: `streamrec sql` is read-only analysis, enforced by DuckDB itself, not by matching SQL text.

Every bypass the adversarial pass used (re-attaching the warehouse read-write, creating a table,
COPY TO a file) and the other writing statements are refused with one line, nothing is written
anywhere, and the warehouse fingerprint is unchanged. Ordinary analysis keeps working.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import ANALYSIS_CONFIG, read_only_query
from tests.faults.conftest import assert_no_traceback, assert_one_line_error, cli, fingerprint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the built warehouse (with raw rows to delete) plus a second DuckDB file to attach."""
    import shutil

    target = tmp_path_factory.mktemp("sql_faults") / "home"
    shutil.copytree(built_home, target)
    duckdb.connect(str(target.parent / "other.duckdb")).close()
    return target


def _bypasses(home: Path) -> list[str]:
    warehouse = Settings(home=home).warehouse_path
    other = home.parent / "other.duckdb"
    return [
        f"attach '{other}' as o; use o; detach warehouse; attach '{warehouse}' as w (read_write); "
        "delete from w.raw.interactions where interaction_id > 1",
        f"attach '{warehouse}' as w2 (read_write)",
        "create table main.x as select 1 as a",
        "create temp table t as select 1 as a",
        "delete from raw.interactions",
        "insert into ops.promotions select * from ops.promotions",
        "update raw.users set user_id = user_id + 1",
        "drop table raw.users",
        "alter table raw.users rename to u",
        f"copy (select * from raw.users) to '{home.parent / 'x.csv'}'",
        f"copy raw.users from '{home.parent / 'x.csv'}'",
        f"export database '{home.parent / 'exported'}'",
        "install httpfs",
        "load httpfs",
        "set enable_external_access = true",
        "reset lock_configuration",
        "pragma enable_external_access",
        "checkpoint",
        "vacuum",
        "begin transaction",
        "select 1; delete from raw.users",  # a reading statement first does not let the second run
    ]


def test_every_bypass_is_refused_and_nothing_changes(home: Path) -> None:
    settings = Settings(home=home)
    before = fingerprint(settings.warehouse_path)
    files_before = sorted(p.name for p in home.parent.iterdir())
    for query in _bypasses(home):  # in process: the function `streamrec sql` calls, one StreamRecError each
        with pytest.raises(StreamRecError) as refused:
            read_only_query(settings, query)
        assert str(refused.value).startswith(("query refused:", "query failed:")), (query, refused.value)
        assert "\n" not in str(refused.value)
    # ... and the adversarial pass's own command line, end to end
    done = cli(home, "sql", _bypasses(home)[0])
    assert_one_line_error(done, "query refused:", "attach")
    assert fingerprint(settings.warehouse_path) == before
    assert sorted(p.name for p in home.parent.iterdir()) == files_before  # no x.csv, no export folder


@pytest.mark.parametrize(
    "query",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from glob('/*')",
        "select * from read_parquet('/tmp/*.parquet')",
    ],
)
def test_reading_files_outside_the_warehouse_is_refused_by_the_engine(home: Path, query: str) -> None:
    with pytest.raises(StreamRecError, match=r"query failed: .*disabled by configuration"):
        read_only_query(Settings(home=home), query)


def test_the_engine_refuses_even_without_the_statement_check(home: Path) -> None:
    """Defence in depth: the connection `streamrec sql` opens refuses ATTACH/COPY/SET by itself."""
    warehouse = Settings(home=home).warehouse_path
    con = duckdb.connect(str(warehouse), read_only=True, config=ANALYSIS_CONFIG)
    try:
        for query in (
            f"attach '{home.parent / 'other.duckdb'}' as o",
            f"copy (select 1) to '{home.parent / 'y.csv'}'",
            "set enable_external_access = true",
            "create table raw.x as select 1",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(query).fetchall()
    finally:
        con.close()
    assert not (home.parent / "y.csv").exists()


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("select count(*) as n from raw.users", "n"),
        ("with u as (select user_id from raw.users) select count(*) as users_n from u", "users_n"),
        ("describe raw.users", "column_name"),
        ("summarize raw.users", "user_id"),
        ("show tables", "name"),
        ("show all tables", "interactions"),
        ("explain select count(*) from raw.users", "physical_plan"),
        ("pragma database_list", "warehouse"),
        ("from raw.users select user_id limit 1", "user_id"),
    ],
)
def test_ordinary_analysis_still_works(home: Path, query: str, needle: str) -> None:
    names, rows = read_only_query(Settings(home=home), query)
    assert rows and needle in " ".join(names + [str(v) for row in rows for v in row])


def test_ordinary_analysis_through_the_cli(home: Path) -> None:
    done = cli(home, "sql", "with u as (select user_id from raw.users) select count(*) as users_n from u")
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "users_n" in done.stdout
