"""`streamrec.client.Client` on a real simulated home: online and point-in-time features, recommendations, scorecard."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamrec.client import Client
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from tests.e2e.conftest import ApiServer
from tests.integration.test_simulate import SIM_VERSION, build_simulated_home

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    simulated, _ = build_simulated_home(built_home, tmp_path_factory)
    return simulated


def _warehouse(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(Settings(home=home).warehouse_path), read_only=True)


def _snapshot(home: Path, entity: str) -> pa.Table:
    return pq.read_table(home / "artifacts" / SIM_VERSION / "online_features" / f"{entity}_features.parquet")


def test_online_features_follow_the_ids_given_and_null_the_unknown(home: Path) -> None:
    snapshot = _snapshot(home, "user")
    known = sorted(snapshot["user_id"].to_pylist())[:3]
    table = Client(home=home).online_features(user_ids=[known[2], 999_999_999, known[0]])
    assert table["user_id"].to_pylist() == [known[2], 999_999_999, known[0]]
    assert table.column_names == snapshot.column_names
    by_id = {row["user_id"]: row for row in snapshot.to_pylist()}
    rows = table.to_pylist()
    assert rows[0] == by_id[known[2]] and rows[2] == by_id[known[0]]
    assert all(v is None for k, v in rows[1].items() if k != "user_id")

    items = Client(home=home).online_features(item_ids=_snapshot(home, "item")["item_id"].to_pylist()[:5])
    assert items.num_rows == 5 and items["item_creator_language_code"].null_count == 0


def test_historical_features_are_point_in_time(home: Path) -> None:
    with _warehouse(home) as con:
        user, first, second = con.execute(
            "select user_id, min(as_of), max(as_of) from features.user_features group by user_id "
            "having count(*) > 2 order by user_id limit 1"
        ).fetchone()
        expected = con.execute(
            "select user_interaction_count_30d_count from features.user_features where user_id = ? and as_of = ?",
            [user, first],
        ).fetchone()[0]
        latest = con.execute(
            "select user_interaction_count_30d_count from features.user_features where user_id = ? and as_of = ?",
            [user, second],
        ).fetchone()[0]
    entities = pa.table(
        {
            "user_id": [user, user, user],
            # Just after the first snapshot, long after the last, and before any snapshot existed.
            "event_ts": [first + timedelta(hours=5), second + timedelta(days=3), first - timedelta(days=1)],
            "label": [1, 0, 1],
        }
    )
    result = Client(home=home).historical_features(entities)
    assert result.column_names[:3] == ["user_id", "event_ts", "label"]
    assert result["as_of"].to_pylist() == [first, second, None]
    assert result["user_interaction_count_30d_count"].to_pylist() == [expected, latest, None]


def test_historical_features_take_pandas_and_return_pandas(home: Path) -> None:
    pandas = pytest.importorskip("pandas", reason="pandas is the `notebook` extra (and in `dev`)")
    with _warehouse(home) as con:
        item, as_of = con.execute(
            "select item_id, max(as_of) from features.item_features group by 1 limit 1"
        ).fetchone()
    frame = pandas.DataFrame({"item_id": [item], "event_ts": [pandas.Timestamp(as_of) + pandas.Timedelta(hours=1)]})
    result = Client(home=home).historical_features(frame).to_pandas()
    assert list(result["item_id"]) == [item] and result["as_of"].iloc[0] == pandas.Timestamp(as_of)


def test_bad_entity_tables_are_named(home: Path) -> None:
    client = Client(home=home)
    with pytest.raises(StreamRecError, match="exactly one of user_id, item_id"):
        client.historical_features({"x": [1], "event_ts": [None]})
    with pytest.raises(StreamRecError, match="no ts column"):
        client.historical_features({"user_id": [1]}, timestamp_column="ts")
    with pytest.raises(StreamRecError, match="one of them"):
        client.online_features()


def test_in_process_recommendations_are_item_ids(home: Path) -> None:
    catalogue = set(_snapshot(home, "item")["item_id"].to_pylist())
    user = _snapshot(home, "user")["user_id"].to_pylist()[0]
    page = Client(home=home).recommend(user, k=8)
    assert page.model_version == SIM_VERSION and len(page.item_ids) == 8 and len(set(page.item_ids)) == 8
    assert set(page.item_ids) <= catalogue
    assert page.to_arrow()["item_id"].to_pylist() == page.item_ids
    assert all(0 < p <= 1 for p in page.propensities)


def test_http_recommendations_are_the_same_shape(home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    catalogue = set(_snapshot(home, "item")["item_id"].to_pylist())
    server = ApiServer(copy).start()
    try:
        page = Client(home=copy).recommend(3, k=5, url=server.url)
        with pytest.raises(StreamRecError, match="the API answered 400"):
            Client(home=copy).recommend(3, k=0, url=server.url)
    finally:
        server.stop()
    assert page.request_id and len(page.item_ids) == 5 and set(page.item_ids) <= catalogue


def test_scorecard_is_a_table(home: Path) -> None:
    table = Client(home=home).scorecard()
    with _warehouse(home) as con:
        rows = con.execute("select count(*) from evaluation.scorecard").fetchone()[0]
    assert table.num_rows == rows > 0 and {"metric", "value"} <= set(table.column_names)
