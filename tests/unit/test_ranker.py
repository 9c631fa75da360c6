"""Ranker: features are selected by name (superset / reordering give identical scores), missing ones are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrec.contracts import ContractViolation, load_contract
from streamrec.models_ml.model import MissingFeature
from streamrec.models_ml.ranker import TWO_TOWER_SCORE, load_ranker, save_ranker
from streamrec.models_ml.tensors import to_tensors
from streamrec.models_ml.train import deterministic, train_ranker
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


def test_precomputed_item_columns_score_like_the_joined_batch(trained) -> None:
    """Serving's path (items encoded once, user once, score per row) gives forward's logits on the joined batch."""
    ranker, tensors, _, contract = trained
    item_names = [f.name for f in contract.for_entity("item")]
    user_names = [f.name for f in contract.for_entity("user")]
    catalogue = {name: tensors[name] for name in item_names}  # 800 catalogue items
    items = ranker.precompute_items(catalogue, chunk=300)  # several chunks
    assert items.values.shape[0] == 800 and set(items.names) == set(item_names)
    rows = torch.tensor([5, 799, 0, 42, 42, 311])
    user = 17
    shared = {name: tensors[name][user : user + 1] for name in user_names}
    score = torch.linspace(-1, 1, len(rows))
    joined = {name: tensors[name].index_select(0, rows) for name in item_names}
    joined |= {name: shared[name].expand(len(rows)) for name in user_names}
    joined[TWO_TOWER_SCORE.name] = score
    with torch.inference_mode():
        expected = ranker(joined)
        got = ranker.score_rows(items, rows, shared, {TWO_TOWER_SCORE.name: score})
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-6)
    with pytest.raises(MissingFeature, match=TWO_TOWER_SCORE.name):
        ranker.score_rows(items, rows, shared, {})
    without_user_feature = {k: v for k, v in shared.items() if k != user_names[0]}
    with pytest.raises(MissingFeature, match=user_names[0]):
        ranker.score_rows(items, rows, without_user_feature, {TWO_TOWER_SCORE.name: score})


def test_pass_through_ranker_orders_by_ease_then_two_tower(tmp_path) -> None:
    """No negative at all (MovieLens: every rating a play): the ranker orders by EASE, two-tower breaking ties."""
    from streamrec.models_ml.ease import MAX_EASE_ITEMS
    from streamrec.models_ml.ranker import SOURCE_TIE_WEIGHT
    from streamrec.models_ml.sources import EASE_SCORE, SOURCE_FEATURES, SourceSizes
    from streamrec.models_ml.train import pass_through_ranker

    contract = load_contract()
    features = [*contract.for_entity("user"), *contract.for_entity("item"), TWO_TOWER_SCORE, *SOURCE_FEATURES]
    cols = synthetic_columns(50, seed=4)
    tensors = to_tensors(cols, features[: -1 - len(SOURCE_FEATURES)])
    tensors[TWO_TOWER_SCORE.name] = torch.linspace(-1, 1, 50)
    for feature in SOURCE_FEATURES:
        tensors[feature.name] = torch.zeros(50)
    tensors[EASE_SCORE.name] = torch.tensor([0.5, 0.2, 0.0, 0.0, 0.9] * 10)
    ranker = pass_through_ranker(features, SourceSizes(), n_items=1_000)
    with torch.inference_mode():
        scores = ranker(tensors)
    assert torch.allclose(scores, tensors[EASE_SCORE.name] + SOURCE_TIE_WEIGHT * tensors[TWO_TOWER_SCORE.name])
    assert int(torch.argmax(scores)) == 49  # EASE 0.9, best two-tower score among those
    # serving's path scores the same, and the checkpoint keeps the pass-through
    items = ranker.precompute_items({f.name: tensors[f.name] for f in contract.for_entity("item")})
    per_row = {name: tensors[name] for name in (TWO_TOWER_SCORE.name, *(f.name for f in SOURCE_FEATURES))}
    user = {f.name: tensors[f.name][:1] for f in contract.for_entity("user")}
    assert torch.equal(ranker.score_rows(items, torch.arange(50), user, per_row), scores)
    save_ranker(ranker, tmp_path / "ranker.pt", contract.sha256)
    with torch.inference_mode():
        assert torch.equal(load_ranker(tmp_path / "ranker.pt")(tensors), scores)
    # without an EASE source (none configured, or a catalogue above its limit) the two-tower's order
    for sizes, n_items in ((SourceSizes(ease=0), 1_000), (SourceSizes(), MAX_EASE_ITEMS + 1)):
        with torch.inference_mode():
            alone = pass_through_ranker(features, sizes, n_items)(tensors)
        assert torch.equal(torch.argsort(alone), torch.arange(50))
