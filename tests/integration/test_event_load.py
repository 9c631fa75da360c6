"""`streamrec load events` on a real warehouse: append, idempotent re-load, conflicts, late events, units."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from streamrec.batch.event_load import load_events
from streamrec.batch.migrate import init_db
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse

T0 = datetime(2025, 6, 1)


def _rows(settings: Settings, sql: str) -> list[tuple]:
    with open_warehouse(settings, read_only=True) as con:
        return con.sql(sql).fetchall()


def _entities(folder: Path) -> None:
    """Two creators, three items, two users: the parents every interaction file below points at."""
    pq.write_table(
        pa.table({"creator_id": [1, 2], "language_code": ["en", "de"], "created_ts": [T0 - timedelta(days=90)] * 2}),
        folder / "creators.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "item_id": [10, 11, 12],
                "creator_id": [1, 1, 2],
                "title": ["a", "b", "c"],
                "genre_code": ["drama", "comedy", "news"],
                "length_seconds": [600.0, 1200.0, 300.0],
                "published_ts": [T0 - timedelta(days=30)] * 3,
            }
        ),
        folder / "items.parquet",
    )
    pa_csv.write_csv(
        pa.table(
            {
                "user_id": [100, 101],
                "signup_ts": [T0 - timedelta(days=60)] * 2,
                "language_code": ["en", "de"],
                "country_code": ["US", "DE"],
                "age_band_code": ["25-34", "unknown"],
                "gender_code": ["f", "unknown"],
            }
        ),
        folder / "users.csv",
    )


def _interactions(ids: list[int], day: int, watch: float = 30.0, **overrides: list) -> pa.Table:
    n = len(ids)
    columns = {
        "interaction_id": ids,
        "user_id": [100 + i % 2 for i in range(n)],
        "item_id": [10 + i % 3 for i in range(n)],
        "event_ts": [T0 + timedelta(days=day, minutes=i) for i in range(n)],
        "event_type": ["play"] * n,
        "watch_seconds": [watch] * n,
    }
    columns.update(overrides)
    return pa.table(columns)


@pytest.fixture
def ready(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """A migrated warehouse with the entities loaded, and a folder for more files."""
    init_db(settings)
    folder = tmp_path / "drop"
    folder.mkdir()
    _entities(folder)
    load_events(settings, [str(folder)])
    return settings, folder


def test_append_is_idempotent_and_records_each_file_once(ready: tuple[Settings, Path]) -> None:
    settings, folder = ready
    pq.write_table(_interactions([1, 2, 3], day=0), folder / "interactions_d0.parquet")
    first = load_events(settings, [str(folder / "interactions_*.parquet")])
    assert first.files == [("interactions_d0.parquet", "interactions", 3, 3)]
    again = load_events(settings, [str(folder)])  # every file of the folder: all already loaded
    assert again.files == [] and len(again.skipped) == 4
    # The same rows under a new name (a re-sent file) are read, match the stored rows, and add nothing.
    pq.write_table(_interactions([1, 2, 3, 4], day=0), folder / "interactions_resent.parquet")
    resent = load_events(settings, [str(folder / "interactions_resent.parquet")])
    assert resent.files == [("interactions_resent.parquet", "interactions", 4, 1)]
    assert _rows(settings, "select count(*), count(distinct interaction_id) from raw.interactions") == [(4, 4)]
    loads = _rows(
        settings,
        "select table_name, rows_in_file, rows_inserted, min_event_ts, max_event_ts, length(sha256) "
        "from ops.raw_loads where table_name = 'interactions' order by loaded_at, rows_in_file",
    )
    assert loads == [
        ("interactions", 3, 3, T0, T0 + timedelta(minutes=2), 64),
        ("interactions", 4, 1, T0, T0 + timedelta(minutes=3), 64),
    ]
    assert {row[0] for row in _rows(settings, "select table_name from ops.raw_loads")} == {
        "creators",
        "items",
        "users",
        "interactions",
    }


def test_conflicting_overlap_is_refused_naming_the_key_and_nothing_is_written(ready: tuple[Settings, Path]) -> None:
    settings, folder = ready
    pq.write_table(_interactions([1, 2, 3], day=0), folder / "interactions_d0.parquet")
    load_events(settings, [str(folder / "interactions_d0.parquet")])
    before = _rows(settings, "select count(*) from ops.raw_loads")
    # ids 4 and 5 are new, id 2 is stored with 30 s watched; the file says 45 s.
    changed = _interactions([4, 2, 5], day=0, watch=45.0)
    pq.write_table(changed, folder / "interactions_fix.parquet")
    with pytest.raises(
        StreamRecError, match=r"interactions_fix.parquet row 2, column interaction_id: interaction_id=2"
    ):
        load_events(settings, [str(folder / "interactions_fix.parquet")])
    assert _rows(settings, "select list(interaction_id order by interaction_id) from raw.interactions") == [
        ([1, 2, 3],)
    ]
    assert _rows(settings, "select count(*) from ops.raw_loads") == before
    # Two files of one load that disagree on a key are refused the same way.
    pq.write_table(_interactions([7], day=1), folder / "interactions_a.parquet")
    pq.write_table(_interactions([7], day=1, watch=1.0), folder / "interactions_b.parquet")
    with pytest.raises(StreamRecError, match=r"interactions_b.parquet row 1, column interaction_id: interaction_id=7"):
        load_events(settings, [str(folder / "interactions_a.parquet"), str(folder / "interactions_b.parquet")])
    assert _rows(settings, "select count(*) from raw.interactions") == [(3,)]


def test_bad_values_name_file_line_and_column_and_write_nothing(ready: tuple[Settings, Path]) -> None:
    settings, folder = ready
    good = _interactions([1, 2], day=0)
    pq.write_table(good, folder / "interactions_good.parquet")
    bad = _interactions([3, 4, 5], day=0, watch_seconds=["12", "oops", "3"])
    pa_csv.write_csv(bad, folder / "interactions_bad.csv")
    # One good and one bad file in one load: the good one is not written either.
    with pytest.raises(
        StreamRecError, match=r"^interactions_bad.csv line 3, column watch_seconds: 'oops' is not a DOUBLE"
    ):
        load_events(settings, [str(folder / "interactions_good.parquet"), str(folder / "interactions_bad.csv")])
    assert _rows(settings, "select count(*) from raw.interactions") == [(0,)]
    cases = [
        (_interactions([1], day=0, event_type=["watch"]), r"row 1, column event_type: 'watch' is not an event type"),
        (_interactions([1, 2], day=0, watch_seconds=[1.0, -5.0]), r"row 2, column watch_seconds: '-5.0' is negative"),
        (_interactions([1, None], day=0), r"row 2, column interaction_id: empty is empty \(required\)"),
        (_interactions([1, 1], day=0, watch_seconds=[1.0, 2.0]), r"row 2, column interaction_id: duplicate key"),
        (_interactions([1], day=0, item_id=[99]), r"row 1, column item_id: item_id 99 is not in raw.items"),
        (_interactions([1], day=0).drop(["event_ts"]), r"column event_ts: missing"),
    ]
    for table, message in cases:
        pq.write_table(table, folder / "interactions_case.parquet")
        with pytest.raises(StreamRecError, match=message):
            load_events(settings, [str(folder / "interactions_case.parquet")])
    assert _rows(settings, "select count(*) from raw.interactions") == [(0,)]


def test_the_cli_prints_one_line_and_exits_1(ready: tuple[Settings, Path]) -> None:
    settings, folder = ready
    nested = _interactions([1], day=0, watch_seconds=[[1.0, 2.0]])  # a list where a number belongs
    pq.write_table(nested, folder / "interactions_nested.parquet")
    done = subprocess.run(
        [sys.executable, "-m", "streamrec", "load", "events", str(folder / "interactions_nested.parquet")],
        env={**os.environ, "STREAMREC_HOME": str(settings.home)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "interactions_nested.parquet" in done.stderr and "nothing was loaded" in done.stderr
    assert _rows(settings, "select count(*) from raw.interactions") == [(0,)]


def test_late_events_inside_the_window_are_accepted_and_older_ones_refused(ready: tuple[Settings, Path]) -> None:
    settings, folder = ready
    pq.write_table(_interactions([1, 2], day=10), folder / "interactions_d10.parquet")
    load_events(settings, [str(folder / "interactions_d10.parquet")])
    pq.write_table(_interactions([3], day=6), folder / "interactions_late.parquet")  # 4 days late
    assert load_events(settings, [str(folder / "interactions_late.parquet")], late_days=7).files[0][3] == 1
    pq.write_table(_interactions([4], day=1), folder / "interactions_old.parquet")  # 9 days late
    with pytest.raises(StreamRecError, match=r"interactions_old.parquet row 1, column event_ts: .* late-event window"):
        load_events(settings, [str(folder / "interactions_old.parquet")], late_days=7)
    assert load_events(settings, [str(folder / "interactions_old.parquet")], late_days=10).files[0][3] == 1
    assert _rows(settings, "select count(*) from raw.interactions") == [(4,)]


def test_mapping_renames_columns_and_converts_units(ready: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, folder = ready
    mapping = tmp_path / "mapping.yml"
    mapping.write_text("interactions:\n  id: interaction_id\n  watch_minutes: {column: watch_seconds, scale: 60}\n")
    table = _interactions([1, 2], day=0).rename_columns(
        ["id", "user_id", "item_id", "event_ts", "event_type", "watch_minutes"]
    )
    table = table.set_column(5, "watch_minutes", pa.array([1.5, 2.0]))
    pq.write_table(table, folder / "interactions_team.parquet")
    load_events(settings, [str(folder / "interactions_team.parquet")], mapping_path=mapping)
    assert _rows(settings, "select watch_seconds from raw.interactions order by 1") == [(90.0,), (120.0,)]
    mapping.write_text("interactions:\n  watch_minutes: {column: watch_secs, scale: 60}\n")
    with pytest.raises(StreamRecError, match=r"mapping.yml, entry watch_minutes: 'watch_secs' is not a raw column"):
        load_events(settings, [str(folder / "interactions_team.parquet")], mapping_path=mapping)


@pytest.mark.slow
def test_sessions_in_minutes_loaded_through_a_mapping_keep_the_psi_test_quiet(
    built_home: Path, copy_home, tmp_path: Path
) -> None:
    """The last days of a built world, exported with session durations in minutes, come back as seconds."""
    from streamrec.batch.build import build, dbt_target_dir

    settings = copy_home(built_home)
    init_db(settings)  # the built home predates ops.raw_loads
    folder = tmp_path / "team"
    folder.mkdir()
    con = open_warehouse(settings, write_raw=True)
    try:
        cutoff = con.sql("select max(started_ts) - interval 5 day from raw.sessions").fetchall()[0][0]
        original = con.sql("select count(*), sum(duration_seconds) from raw.sessions").fetchall()[0]
        con.execute(f"create temp table cut as select session_id from raw.sessions where started_ts >= '{cutoff}'")
        con.execute(
            f"copy (select session_id, user_id, started_ts, duration_seconds / 60 as duration_minutes, device_code "
            f"from raw.sessions where session_id in (select * from cut)) to '{folder}/sessions_tail.parquet'"
        )
        con.execute(
            f"copy (select * from raw.interactions where session_id in (select * from cut) or event_ts >= '{cutoff}')"
            f" to '{folder}/interactions_tail.csv' (header)"
        )
        con.execute(f"delete from raw.interactions where session_id in (select * from cut) or event_ts >= '{cutoff}'")
        con.execute("delete from raw.sessions where session_id in (select * from cut)")
    finally:
        con.close()
    mapping = tmp_path / "units.yml"
    mapping.write_text("sessions:\n  duration_minutes: {column: duration_seconds, scale: 60}\n")
    summary = load_events(settings, [str(folder)], mapping_path=mapping)
    assert sorted(f[1] for f in summary.files) == ["interactions", "sessions"]
    assert all(f[2] == f[3] > 0 for f in summary.files)
    count, total = _rows(settings, "select count(*), sum(duration_seconds) from raw.sessions")[0]
    assert count == original[0] and total == pytest.approx(original[1], rel=1e-9)
    build(settings)  # raises if any test fails, the PSI tests included
    results = json.loads((dbt_target_dir(settings) / "run_results.json").read_text())["results"]
    psi = {r["status"] for r in results if ".psi_" in r["unique_id"]}
    assert psi == {"pass"}
    shutil.rmtree(folder)
