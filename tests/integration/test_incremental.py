"""Incremental per-day models on DuckDB: several appends (late events included) built incrementally equal a
full refresh, and an event older than the lookback makes the next build a full one."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from streamrec.batch.build import build, dbt_target_dir
from streamrec.batch.event_load import INCREMENTAL_LOOKBACK_DAYS, load_events
from streamrec.batch.migrate import init_db
from streamrec.core.settings import DBT_PROJECT_DIR, Settings
from streamrec.core.warehouse import open_warehouse
from tests.integration.history_split import split_history
from tests.integration.test_daily import table_digest

PER_DAY = (
    "int_interactions_aggregated_to_user_days",
    "int_interactions_aggregated_to_item_days",
    "int_sessions_aggregated_to_user_days",
)
DERIVED = (
    *(f"staging.{name}" for name in PER_DAY),
    "features.user_features",
    "features.item_features",
    "features.training_examples",
)
FEATURES = "staging intermediate features training"
FILTER = "coalesce(max(day_index), 0)"  # macros/incremental.sql: present only in an incremental run's SQL


def _digests(settings: Settings) -> dict[str, str]:
    with open_warehouse(settings, read_only=True) as con:
        return {relation: table_digest(con, relation) for relation in DERIVED}


def _ran_incrementally(settings: Settings) -> dict[str, bool]:
    results = json.loads((dbt_target_dir(settings) / "run_results.json").read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]: FILTER in (r.get("compiled_code") or "")
        for r in results
        if r["unique_id"].split(".")[-1] in PER_DAY
    }


def test_the_lookback_var_matches_the_loader() -> None:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["incremental_lookback_days"] == INCREMENTAL_LOOKBACK_DAYS


@pytest.mark.slow
def test_incremental_builds_after_appends_and_late_events_equal_a_full_refresh(
    generated_home: Path, tmp_path: Path
) -> None:
    settings, drop, _ = split_history(generated_home, tmp_path, days=7)
    build(settings, select=FEATURES)
    assert not any(_ran_incrementally(settings).values())  # the first build creates the tables

    days = sorted({path.name.split("_", 1)[1] for path in drop.iterdir()})
    # A quarter of day 2's interactions arrive late, with day 5.
    day2 = pq.read_table(drop / f"interactions_{days[2]}")
    late = [i % 4 == 0 for i in day2.column("interaction_id").to_pylist()]
    pq.write_table(day2.filter(late), tmp_path / f"interactions_late-{days[2]}")
    pq.write_table(day2.filter([not x for x in late]), drop / f"interactions_{days[2]}")
    for index, day in enumerate(days):
        files = [str(drop / f"sessions_{day}"), str(drop / f"interactions_{day}")]
        if index == 5:
            files.append(str(tmp_path / f"interactions_late-{days[2]}"))
        load_events(settings, files)
        if index in (1, 3, 6):
            build(settings, select=FEATURES)
            assert all(_ran_incrementally(settings).values())
    incremental = _digests(settings)

    build(settings, select=FEATURES, full_refresh=True)
    assert not any(_ran_incrementally(settings).values())
    assert _digests(settings) == incremental


@pytest.mark.slow
def test_an_event_older_than_the_lookback_drops_the_per_day_tables(built_home: Path, copy_home) -> None:
    settings: Settings = copy_home(built_home)
    init_db(settings)
    with open_warehouse(settings, read_only=True) as con:
        newest, user_id, item_id, next_id = con.sql(
            "select max(event_ts), min(user_id), min(item_id), max(interaction_id) + 1 from raw.interactions"
        ).fetchall()[0]
    old = newest - timedelta(days=INCREMENTAL_LOOKBACK_DAYS + 2)
    path = settings.home / "interactions_old.csv"
    path.write_text(
        "interaction_id,user_id,item_id,event_ts,event_type,watch_seconds\n"
        f"{next_id},{user_id},{item_id},{old},play,30\n"
    )
    load_events(settings, [str(path)], late_days=INCREMENTAL_LOOKBACK_DAYS + 3)
    with open_warehouse(settings, read_only=True) as con:
        left = con.sql("select table_name from information_schema.tables where table_name like 'int_%'").fetchall()
    assert not {name for (name,) in left} & set(PER_DAY)
    build(settings, select=FEATURES)
    assert not any(_ran_incrementally(settings).values())  # recomputed whole, the old day included
