"""Issue 12 on the small built warehouse: all history, point-in-time, merged candidate sources, refit, refusal."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamrec.contracts import load_contract
from streamrec.core.warehouse import connect, fetchall
from streamrec.models_ml.bundle import BundleMismatch, load_bundle, verify_bundle
from streamrec.models_ml.data import load_training_data
from streamrec.models_ml.sources import NEIGHBOURS_FILE, SOURCE_FEATURES
from streamrec.models_ml.train import train

pytestmark = pytest.mark.slow


def test_training_reads_every_day_of_history_point_in_time(built_home, copy_home) -> None:
    """Examples come from the whole history (not only the daily grid), each from the latest snapshot before it."""
    settings = copy_home(built_home)
    data = load_training_data(settings, load_contract(), holdout_days=0)  # what the refit reads
    with connect(settings, read_only=True) as con:
        first_daily, first_event = fetchall(
            con,
            "select (select max(as_of) - interval 14 day from staging.int_as_of_days_generated), "
            "(select min(event_ts) from raw.interactions)",
        )[0]
        grid = [r[0] for r in fetchall(con, "select as_of from staging.int_as_of_days_generated order by 1")]
    event_ts = data.examples["event_ts"].astype("datetime64[us]")
    as_of = data.examples["as_of"].astype("datetime64[us]")
    # rows before the daily days are there: the weekly history reaches back to the first events
    assert (event_ts < np.datetime64(first_daily)).sum() > 0
    assert as_of.min() <= np.datetime64(first_event) + np.timedelta64(8, "D")
    # every row's snapshot precedes its event and is the latest grid snapshot at or before its day
    grid_arr = np.array(grid, dtype="datetime64[us]")
    latest_before = grid_arr[np.searchsorted(grid_arr, event_ts, side="right") - 1]
    assert (as_of <= event_ts).all()
    assert (as_of == latest_before).all()
    # the refit reads up to the latest as_of: the holdout window's interactions are in it
    assert event_ts.max() >= np.datetime64(data.latest_as_of) - np.timedelta64(1, "D")
    # the item-to-item source's inputs never come from the row's own day or later
    assert (data.recent_items["as_of"] <= np.datetime64(data.latest_as_of)).all()
    with connect(settings, read_only=True) as con:
        late = fetchall(
            con,
            "select count(*) from features.user_recent_items where last_event_ts >= as_of "
            "or last_event_ts < as_of - interval 30 day",
        )
    assert late == [(0,)]


def test_refit_bundle_records_split_figures_sources_and_merges_unique_candidates(built_home, copy_home) -> None:
    settings = copy_home(built_home)
    train(settings, epochs=1, seed=5, version="vsrc")
    bundle_dir = settings.artifacts_dir / "vsrc"
    manifest = verify_bundle(bundle_dir, expected_version="vsrc")
    metrics = manifest.metrics
    assert metrics["refit"] is True
    assert metrics["refit_train_positives"] > metrics["train_positives"] > 0
    assert "model_ndcg@10" in metrics and metrics["split_as_of"] < metrics["features_as_of"]
    names = [source["name"] for source in manifest.candidate_sources]
    assert names[:3] == ["two_tower", "item_neighbours", "popularity"]
    for source in manifest.candidate_sources:
        assert set(source["files"]) <= set(manifest.files), source
    schema = json.loads((bundle_dir / "feature_schema.json").read_text())
    derived = {f["name"] for f in schema["derived_features"]}
    assert {f.name for f in SOURCE_FEATURES} <= derived

    from streamrec.api.config import ApiSettings
    from streamrec.api.services.fairness import ExposureTracker
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import load_serving_bundle

    bundle = load_serving_bundle(bundle_dir, expected_version="vsrc")
    assert bundle.sources is not None
    # logged skips give the ranker two classes: an MLP over every source's inputs but the two-tower's own
    # (TrainConfig.ranker_two_tower_inputs off: on its training rows that score is inflated)
    assert metrics["ranker_scores_by"] == "mlp" and bundle.ranker.cfg.source_score is None
    # ... which weighs EASE itself: EASE's L2 is not chosen on positives-only validation then (TrainConfig
    # .ease_l2_validation "one_class"), and no blend is chosen
    assert metrics["validation"]["ease_l2"]["grid"] == [] and metrics["hyperparameters"]["ease_l2"] == 100.0
    assert "blend" not in metrics["validation"] and metrics["ranker_blend"] == {}
    read = set(bundle.ranker.feature_names)
    assert {f.name for f in SOURCE_FEATURES} - {"two_tower_rank"} <= read
    assert not {"two_tower_score", "two_tower_rank"} & read
    recommender = Recommender(ApiSettings.from_env({}, seed=0).with_home(settings), ExposureTracker())
    neighbour_only = 0
    for user in bundle.user_ids[:40].tolist():
        row = bundle.user_row(int(user))
        rows, logits = recommender.candidates(bundle, int(user), row)
        assert len(np.unique(rows)) == len(rows), "merged candidates repeat an item"
        assert ((rows >= 0) & (rows < bundle.n_items)).all(), "a candidate outside the bundle's catalogue"
        assert np.all(np.diff(logits) <= 0)
        _, query = recommender.user_query(bundle, int(user), row)
        faiss_rows, _ = recommender.retrieve(bundle, query)
        neighbour_only += int((~np.isin(rows, faiss_rows)).sum())
    neighbours = pq.read_table(bundle_dir / NEIGHBOURS_FILE)
    assert set(neighbours.column("item_id").to_pylist()) <= set(bundle.item_ids.tolist())
    # the small catalogue fits in the index's list, so merging adds no new row here, but nothing is lost either
    assert neighbour_only >= 0


def test_bundle_whose_source_file_was_altered_is_refused(built_home, copy_home) -> None:
    settings = copy_home(built_home)
    train(settings, epochs=1, seed=5, version="valt", refit=False)
    bundle_dir = settings.artifacts_dir / "valt"
    path = bundle_dir / NEIGHBOURS_FILE
    table = pq.read_table(path)
    scores = table.column("similarity_score").to_numpy().copy()
    scores[0] = 0.999
    pq.write_table(
        table.set_column(table.schema.get_field_index("similarity_score"), "similarity_score", [scores]), path
    )
    with pytest.raises(BundleMismatch, match=r"sources/item_neighbours\.parquet"):
        load_bundle(bundle_dir, expected_version="valt")


def test_tune_stores_the_chosen_values_and_versions_shows_them(built_home, copy_home) -> None:
    """A 1-second budget still runs one trial; its values train the bundle and `streamrec versions` lists them."""
    from typer.testing import CliRunner

    from streamrec.cli.main import app

    settings = copy_home(built_home)
    train(settings, epochs=2, seed=5, version="vtuned", refit=False, tune_seconds=1.0)
    metrics = verify_bundle(settings.artifacts_dir / "vtuned", expected_version="vtuned").metrics
    tuning = metrics["tuning"]
    assert tuning["tuned"] is True and tuning["trials"] >= 1
    assert 1 <= tuning["params"]["epochs"] <= 2
    for name in ("lr", "weight_decay", "temperature", "id_dim", "batch_size", "neighbours_k", "ease_k"):
        assert metrics["hyperparameters"][name] == tuning["params"][name], name
    result = CliRunner().invoke(app, ["versions"], env={"STREAMREC_HOME": str(settings.home), "COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "tuned (" in result.output and "temperature=" in result.output
