"""`streamrec train` on the small built warehouse: a complete bundle, a registry row and offline rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamrec.contracts import ContractViolation, load_contract
from streamrec.core.warehouse import connect, fetchall
from streamrec.models_ml.bundle import REQUIRED_FILES, verify_bundle
from streamrec.models_ml.data import load_training_data
from streamrec.models_ml.train import TrainConfig, train, train_config_from_checkpoint

pytestmark = pytest.mark.slow


def test_train_writes_registered_bundle_and_offline_rows(built_home, copy_home) -> None:
    settings = copy_home(built_home)
    train_cfg = TrainConfig(watch_weight=0.35, ranker_batch_size=768)
    summary = train(settings, epochs=2, seed=7, version="vtest-1", train_cfg=train_cfg)
    assert "vtest-1" in summary

    bundle = settings.artifacts_dir / "vtest-1"
    for name in (*REQUIRED_FILES, "manifest.json"):
        assert (bundle / name).is_file(), name
    assert not (settings.artifacts_dir / ".staging" / "vtest-1").exists()
    manifest = verify_bundle(bundle, expected_version="vtest-1")
    assert manifest.embedding_dim == 128
    assert manifest.n_items == len(np.load(bundle / "item_ids.npy"))
    assert 0.95 <= manifest.index_recall_at_500 <= 1.0
    # Each checkpoint carries the optimisation settings it was trained with, beside the model's own config.
    for checkpoint in ("retrieval.pt", "ranker.pt"):
        assert train_config_from_checkpoint(bundle / checkpoint) == train_cfg
    assert manifest.metrics["hyperparameters"]["watch_weight"] == 0.35
    schema = json.loads((bundle / "feature_schema.json").read_text())
    assert [f["name"] for f in schema["features"]] == load_contract().names("user") + load_contract().names("item")

    with connect(settings, read_only=True) as con:
        registered = fetchall(con, "select version, index_kind from ops.model_versions")
        counts = dict(
            (f"{p}/{s}", n)
            for p, s, n in fetchall(
                con,
                "select policy, stage, count(*) from ops.offline_recommendations where version = 'vtest-1' "
                "group by all",
            )
        )
        holdout_users = fetchall(
            con, "select count(distinct user_id) from ops.offline_holdout where version = 'vtest-1'"
        )
        ranking_users = fetchall(
            con,
            "select count(distinct user_id), max(rank) from ops.offline_recommendations "
            "where version = 'vtest-1' and stage = 'ranking' and policy = 'model'",
        )
        # Recommended items were never interacted with before the split.
        leaked = fetchall(
            con,
            """
            select count(*) from ops.offline_recommendations r
            join raw.interactions i on i.user_id = r.user_id and i.item_id = r.item_id
            where r.version = 'vtest-1' and i.event_ts < ?::timestamp
            """,
            [manifest.metrics["split_as_of"]],
        )
    assert registered == [("vtest-1", manifest.index_kind)]
    assert set(counts) == {"model/retrieval", "model/ranking", "popularity/retrieval", "popularity/ranking"}
    assert holdout_users[0][0] > 0
    assert ranking_users[0] == (holdout_users[0][0], 10)
    assert counts["model/ranking"] == counts["popularity/ranking"] == 10 * holdout_users[0][0]
    assert leaked[0][0] == 0


def test_train_is_deterministic_given_seed(built_home, copy_home) -> None:
    settings = copy_home(built_home)
    train(settings, epochs=1, seed=3, version="va")
    train(settings, epochs=1, seed=3, version="vb")
    a = np.load(settings.artifacts_dir / "va" / "item_embeddings.npy")
    b = np.load(settings.artifacts_dir / "vb" / "item_embeddings.npy")
    assert np.array_equal(a, b)
    with pytest.raises(Exception, match="already exists"):
        train(settings, epochs=1, seed=3, version="va")


def test_contract_violation_in_warehouse_stops_training(built_home, copy_home) -> None:
    settings = copy_home(built_home)
    with connect(settings) as con:
        con.execute(
            "update features.training_examples set user_skip_30d_ratio = 3.5 "
            "where interaction_id = (select min(interaction_id) from features.training_examples)"
        )
    with pytest.raises(ContractViolation, match=r"user_skip_30d_ratio = 3\.5 .*range \[0, 1\]"):
        load_training_data(settings, load_contract())
    with pytest.raises(ContractViolation, match="user_skip_30d_ratio"):
        train(settings, epochs=1, seed=1, version="vbad")
    # Refused before anything was written: no bundle, no registry row, no offline rows.
    assert not (settings.artifacts_dir / "vbad").exists()
    with connect(settings, read_only=True) as con:
        assert fetchall(con, "select count(*) from ops.model_versions where version = 'vbad'") == [(0,)]
        assert fetchall(con, "select count(*) from ops.offline_recommendations where version = 'vbad'") == [(0,)]
