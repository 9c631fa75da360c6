"""Ranker: features are selected by name (superset / reordering give identical scores), missing ones are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contracts import ContractViolation, load_contract
from models_ml.data import to_tensors
from models_ml.model import MissingFeature
from models_ml.ranker import TWO_TOWER_SCORE, load_ranker, save_ranker
from models_ml.train import deterministic, train_ranker
from tests.unit.test_model import synthetic_columns


@pytest.fixture(scope="module")
def trained():
    contract = load_contract()
    features = [*contract.for_entity("user"), *contract.for_entity("item"), TWO_TOWER_SCORE]
    cols = synthetic_columns(800, seed=3)
    tensors = to_tensors(cols, features[:-1])
    rng = np.random.default_rng(0)
    tensors[TWO_TOWER_SCORE.name] = torch.from_numpy(rng.uniform(-1, 1, 800).astype(np.float32))
    # Engagement depends on the score and one feature, so there is something to learn.
    labels = ((tensors[TWO_TOWER_SCORE.name] + (tensors["user_is_new_flag"] - 0.5)) > 0).float()
    with deterministic(0):
        ranker, losses = train_ranker(tensors, labels, features, epochs=3, seed=0)
    return ranker, tensors, losses, contract


def test_ranker_learns(trained) -> None:
    _, _, losses, _ = trained
    assert losses[-1] < losses[0]


def test_superset_and_reordered_features_give_identical_scores(trained) -> None:
    ranker, tensors, _, _ = trained
    exact = {name: tensors[name] for name in ranker.feature_names}
    superset = dict(reversed(list(tensors.items())))  # other order, plus user_id/item_id the ranker ignores
    superset["some_future_feature_count"] = torch.ones(800)
    with torch.inference_mode():
        a = ranker(exact)
        b = ranker(superset)
    assert a.shape == (800,)
    assert torch.equal(a, b)


def test_missing_feature_is_named(trained) -> None:
    ranker, tensors, _, _ = trained
    partial = {k: v for k, v in tensors.items() if k != "item_creator_language_code"}
    with pytest.raises(MissingFeature, match="item_creator_language_code"):
        ranker(partial)
    partial = {k: v for k, v in tensors.items() if k != TWO_TOWER_SCORE.name}
    with pytest.raises(MissingFeature, match=TWO_TOWER_SCORE.name):
        ranker(partial)


def test_artifact_keeps_feature_list_and_contract_hash(trained, tmp_path) -> None:
    ranker, tensors, _, contract = trained
    save_ranker(ranker, tmp_path / "ranker.pt", contract.sha256)
    checkpoint = torch.load(tmp_path / "ranker.pt", weights_only=True)
    assert checkpoint["feature_names"] == ranker.feature_names
    assert checkpoint["contract_sha256"] == contract.sha256
    loaded = load_ranker(tmp_path / "ranker.pt")
    loaded.check_contract(contract.sha256)  # same contract: fine
    with torch.inference_mode():
        assert torch.equal(loaded(tensors), ranker(tensors))
    with pytest.raises(ContractViolation, match="trained against contract"):
        loaded.check_contract("0" * 64)
