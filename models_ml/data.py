"""Training data from the warehouse: read by column NAME, validate against the contract, split by time.

Everything is read through one read-only connection as Arrow and turned into a dict name -> numpy
array (nulls as NaN / None), so nothing here depends on column positions. Every contract feature
is checked with `contracts.schema.validate_values` before a tensor is made: a row that breaks the
contract stops training with a ContractViolation naming feature, value and rule.

Temporal split: the last `holdout_days` days before the latest snapshot are held out. Models train
on interactions before the split; held-out users' positives in the holdout window (items they had
not interacted with before) are the offline ground truth, and offline recommendations use the
feature snapshot at the split, so nothing from the holdout leaks into what is evaluated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from streamrec.contracts.schema import Feature, FeatureContract
from streamrec.core.errors import StreamRecError
from streamrec.core.event_types import POSITIVE_EVENT_TYPES
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, table_exists
from streamrec.models_ml.tensors import Columns, validate_features


def read_columns(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None) -> Columns:
    """Run a query and return its columns by name as numpy arrays (null numbers -> NaN, null strings -> None)."""
    table = con.sql(sql, params=list(params) if params else None).to_arrow_table()
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


@dataclass
class TrainingData:
    """What training needs, already validated against the contract."""

    user_features: list[Feature]  # contract user features, contract order
    item_features: list[Feature]  # contract item features, contract order
    examples: Columns  # training_examples rows before the split (labels, watch seconds, point-in-time features)
    item_grid: Columns  # item features at every as_of before the split (to sample ranker negatives in time)
    user_snapshot_split: Columns  # user features at the split as_of (offline evaluation)
    item_snapshot_split: Columns  # item features at the split as_of (offline evaluation)
    user_snapshot_latest: Columns  # serving snapshot (latest as_of)
    item_snapshot_latest: Columns  # serving snapshot (latest as_of)
    seen_pairs: Columns  # distinct (user_id, item_id) interacted with before the split (any event)
    holdout_pairs: Columns  # distinct (user_id, item_id) positives in the holdout window, not seen before
    item_popularity: Columns  # item_id, positives before the split (the popularity baseline)
    recent_items: Columns  # features.user_recent_items up to the split: as_of, user_id, item_id
    item_neighbours: Columns  # features.item_neighbours up to the split: as_of, item_id, neighbour_item_id, score
    positive_events: Columns  # raw positives before the split: user_id, item_id, event_ts (EASE's input)
    latest_as_of: dt.datetime
    split_as_of: dt.datetime


def _as_of_grid(con: duckdb.DuckDBPyConnection) -> list[dt.datetime]:
    rows = con.sql(
        "select distinct u.as_of from features.user_features u "
        "join (select distinct as_of from features.item_features) i using (as_of) order by 1"
    ).fetchall()
    return [r[0] for r in rows]


def _feature_columns(features: Sequence[Feature], keys: Sequence[str]) -> str:
    return ", ".join([*keys, *features_names(features)])


def features_names(features: Sequence[Feature]) -> list[str]:
    """Names of `features`, in order."""
    return [f.name for f in features]


# The dbt staging view of raw.interactions: training reads interactions through the same typed, renamed
# model the feature tables are built from, never the raw table itself.
INTERACTIONS = "staging.stg_raw__interactions"
REQUIRED_TABLES = (
    *(
        ("features", t)
        for t in ("user_features", "item_features", "training_examples", "user_recent_items", "item_neighbours")
    ),
    ("staging", "stg_raw__interactions"),
)


def _require_built(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    for schema, table in REQUIRED_TABLES:
        if not table_exists(con, schema, table):
            raise StreamRecError(
                f"{settings.warehouse_path} has no {schema}.{table}: run `streamrec build` before training"
            )


def _split_point(con: duckdb.DuckDBPyConnection, holdout_days: int) -> tuple[dt.datetime, dt.datetime]:
    """(latest as_of, split as_of): the split is the last as_of at least `holdout_days` before the latest."""
    grid = _as_of_grid(con)
    if not grid:
        raise StreamRecError("features.user_features / item_features have no common as_of: rebuild features")
    latest = grid[-1]
    wanted_split = latest - dt.timedelta(days=holdout_days)
    earlier = [a for a in grid if a <= wanted_split]
    return latest, earlier[-1] if earlier else grid[0]


@dataclass
class _Snapshots:
    user_split: Columns
    item_split: Columns
    user_latest: Columns
    item_latest: Columns


def _read_snapshots(
    con: duckdb.DuckDBPyConnection, user_cols: str, item_cols: str, split: dt.datetime, latest: dt.datetime
) -> _Snapshots:
    snapshot = "select {cols} from features.{table} where as_of = ? order by {key}"
    user_sql = snapshot.format(cols=user_cols, table="user_features", key="user_id")
    item_sql = snapshot.format(cols=item_cols, table="item_features", key="item_id")
    return _Snapshots(
        user_split=read_columns(con, user_sql, [split]),
        item_split=read_columns(con, item_sql, [split]),
        user_latest=read_columns(con, user_sql, [latest]),
        item_latest=read_columns(con, item_sql, [latest]),
    )


def _read_examples(con: duckdb.DuckDBPyConnection, features: Sequence[Feature], split: dt.datetime) -> Columns:
    keys = ["interaction_id", "user_id", "item_id", "event_ts", "as_of", "label", "watch_seconds"]
    return read_columns(
        con,
        f"select {_feature_columns(features, keys)} from features.training_examples "
        "where event_ts < ? order by interaction_id",
        [split],
    )


def _read_source_tables(con: duckdb.DuckDBPyConnection, split: dt.datetime) -> tuple[Columns, Columns]:
    """(recent items, item neighbours) at every as_of up to the split: the item-to-item source's inputs."""
    recent_items = read_columns(
        con,
        "select as_of, user_id, item_id from features.user_recent_items where as_of <= ? order by all",
        [split],
    )
    neighbours = read_columns(
        con,
        "select as_of, item_id, neighbour_item_id, similarity_score from features.item_neighbours "
        "where as_of <= ? order by as_of, item_id, neighbour_rank",
        [split],
    )
    return recent_items, neighbours


@dataclass
class _InteractionSplit:
    positive_events: Columns
    seen_pairs: Columns
    holdout_pairs: Columns
    item_popularity: Columns


def _read_interaction_split(
    con: duckdb.DuckDBPyConnection, split: dt.datetime, holdout_end: dt.datetime
) -> _InteractionSplit:
    """EASE's positives, the seen pairs, the holdout's ground truth and popularity, all cut at the split."""
    positive = ", ".join(f"'{e}'" for e in POSITIVE_EVENT_TYPES)
    holdout_sql = f"""
        select distinct h.user_id, h.item_id
        from {INTERACTIONS} h
        where h.event_ts >= ? and h.event_ts < ? and h.event_type in ({positive})
          and not exists (
            select 1 from {INTERACTIONS} s
            where s.user_id = h.user_id and s.item_id = h.item_id and s.event_ts < ?
          )
        order by all
    """
    return _InteractionSplit(
        positive_events=read_columns(
            con,
            f"select user_id, item_id, event_ts from {INTERACTIONS} "
            f"where event_ts < ? and event_type in ({positive}) order by event_ts, user_id, item_id",
            [split],
        ),
        seen_pairs=read_columns(
            con, f"select distinct user_id, item_id from {INTERACTIONS} where event_ts < ? order by all", [split]
        ),
        holdout_pairs=read_columns(con, holdout_sql, [split, holdout_end, split]),
        item_popularity=read_columns(
            con,
            f"select item_id, count(*)::double as positives from {INTERACTIONS} "
            f"where event_ts < ? and event_type in ({positive}) group by item_id order by item_id",
            [split],
        ),
    )


def load_training_data(
    settings: Settings, contract: FeatureContract, holdout_days: int = 7, holdout_window_days: int | None = None
) -> TrainingData:
    """Read, validate and split everything training and offline evaluation need (one read-only connection).

    `holdout_window_days`: only the first that many days after the split are ground truth (tuning's
    validation window, which stops where the offline evaluation's holdout starts); default: all of them.
    """
    user_feats = contract.for_entity("user")
    item_feats = contract.for_entity("item")
    user_cols = _feature_columns(user_feats, ["user_id", "as_of"])
    item_cols = _feature_columns(item_feats, ["item_id", "creator_id", "as_of"])
    with connect(settings, read_only=True) as con:
        _require_built(con, settings)
        latest, split = _split_point(con, holdout_days)
        snapshots = _read_snapshots(con, user_cols, item_cols, split, latest)
        examples = _read_examples(con, user_feats + item_feats, split)
        item_grid = read_columns(
            con, f"select {item_cols} from features.item_features where as_of < ? order by as_of, item_id", [split]
        )
        recent_items, neighbours = _read_source_tables(con, split)
        holdout_end = (
            split + dt.timedelta(days=holdout_window_days) if holdout_window_days else latest + dt.timedelta(days=1)
        )
        interactions = _read_interaction_split(con, split, holdout_end)

    for columns, feats, what in (
        (examples, user_feats + item_feats, "features.training_examples"),
        (item_grid, item_feats, f"features.item_features (as_of < {split})"),
        (snapshots.user_split, user_feats, f"features.user_features (as_of {split})"),
        (snapshots.item_split, item_feats, f"features.item_features (as_of {split})"),
        (snapshots.user_latest, user_feats, f"features.user_features (as_of {latest})"),
        (snapshots.item_latest, item_feats, f"features.item_features (as_of {latest})"),
    ):
        validate_features(columns, feats, what)
    if not (examples["label"] == 1).any():
        raise StreamRecError(
            f"features.training_examples has no positive example before {split}: not enough history to train"
        )
    return TrainingData(
        user_features=user_feats,
        item_features=item_feats,
        examples=examples,
        item_grid=item_grid,
        user_snapshot_split=snapshots.user_split,
        item_snapshot_split=snapshots.item_split,
        user_snapshot_latest=snapshots.user_latest,
        item_snapshot_latest=snapshots.item_latest,
        seen_pairs=interactions.seen_pairs,
        holdout_pairs=interactions.holdout_pairs,
        item_popularity=interactions.item_popularity,
        recent_items=recent_items,
        item_neighbours=neighbours,
        positive_events=interactions.positive_events,
        latest_as_of=latest,
        split_as_of=split,
    )
