"""Two-tower model: shapes, normalisation, named inputs, determinism, loss decreasing, contract checks on data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrec.contracts import ContractViolation, load_contract
from streamrec.models_ml.model import (
    MissingFeature,
    TwoTowerConfig,
    in_batch_softmax_loss,
    load_two_tower,
    save_two_tower,
)
from streamrec.models_ml.tensors import to_tensors, validate_features
from streamrec.models_ml.train import TrainConfig, deterministic, train_two_tower


def synthetic_columns(n: int, seed: int = 0, n_users: int = 40, n_items: int = 30) -> dict[str, np.ndarray]:
    """Rows that keep the contract: every user and item feature, ids, and a hidden preference structure."""
    rng = np.random.default_rng(seed)
    contract = load_contract()
    cols: dict[str, np.ndarray] = {}
    users = rng.integers(0, n_users, n)
    # Users in group g like items in group g: item = g * 10 + something, so the task is learnable.
    items = (users % 3) * 10 + rng.integers(0, 10, n)
    cols["user_id"] = users.astype(np.int64) + 1000
    cols["item_id"] = (items % n_items).astype(np.int64) + 5000
    for f in contract.for_entity("user") + contract.for_entity("item"):
        if f.codes:
            cols[f.name] = np.array(rng.choice(f.codes, n), dtype=object)
        elif f.dtype == "bool":
            cols[f.name] = rng.random(n) < 0.3
        else:
            values = rng.uniform(f.min, min(f.max, f.min + 100), n)
            if f.dtype == "int64":
                values = np.floor(values)
            if f.nullable:
                values[rng.random(n) < 0.1] = np.nan
            cols[f.name] = values
    return cols


def _features():
    contract = load_contract()
    return contract.for_entity("user"), contract.for_entity("item")


def _train(seed: int, epochs: int = 2, n: int = 600):
    user_f, item_f = _features()
    tensors = to_tensors(synthetic_columns(n), user_f + item_f)
    with deterministic(seed):
        return train_two_tower(tensors, user_f, item_f, epochs, seed, train_cfg=TrainConfig(batch_size=64)), tensors


def test_towers_output_unit_vectors_of_configured_dim() -> None:
    (model, _), tensors = _train(seed=1, epochs=1)
    with torch.inference_mode():
        u = model.user_embedding(tensors)
        v = model.item_embedding(tensors)
    assert u.shape == (600, 128) and v.shape == (600, 128)
    assert torch.allclose(u.norm(dim=1), torch.ones(600), atol=1e-5)
    assert torch.allclose(v.norm(dim=1), torch.ones(600), atol=1e-5)
    assert not torch.isnan(u).any()  # nullable features with NaN must not leak NaN


def test_same_seed_gives_identical_embeddings_and_other_seed_differs() -> None:
    (a, _), tensors = _train(seed=3)
    (b, _), _ = _train(seed=3)
    (c, _), _ = _train(seed=4)
    with torch.inference_mode():
        ea, eb, ec = (m.item_embedding(tensors) for m in (a, b, c))
    assert torch.equal(ea, eb)
    assert not torch.equal(ea, ec)


def test_loss_decreases_on_toy_problem() -> None:
    (_, losses), _ = _train(seed=0, epochs=5, n=1000)
    assert losses[-1] < losses[0] * 0.9


def test_inputs_are_read_by_name_extra_and_reordered_keys_do_not_matter() -> None:
    (model, _), tensors = _train(seed=2, epochs=1)
    shuffled = dict(reversed(list(tensors.items())))
    shuffled["not_a_feature"] = torch.zeros(600)
    with torch.inference_mode():
        assert torch.equal(model.user_embedding(tensors), model.user_embedding(shuffled))
    del shuffled["user_tenure_days"]
    with pytest.raises(MissingFeature, match="user_tenure_days"):
        model.user_embedding(shuffled)


def test_unknown_ids_use_the_cold_start_row() -> None:
    (model, _), tensors = _train(seed=2, epochs=1)
    cold = dict(tensors)
    cold["user_id"] = torch.full_like(tensors["user_id"], 10**12)
    rows = model.user_tower.ids.rows(cold["user_id"])
    assert (rows == 0).all()
    assert (model.user_tower.ids.rows(tensors["user_id"]) > 0).all()


def test_checkpoint_round_trip(tmp_path) -> None:
    (model, _), tensors = _train(seed=5, epochs=1)
    save_two_tower(model, tmp_path / "retrieval.pt", "abc")
    loaded = load_two_tower(tmp_path / "retrieval.pt")
    checkpoint = torch.load(tmp_path / "retrieval.pt", weights_only=True)
    assert checkpoint["user_feature_names"] == [f.name for f in _features()[0]]
    assert set(checkpoint["norm"]) >= {"user_tenure_days", "item_length_seconds"}
    assert loaded.contract_sha256 == "abc"
    with torch.inference_mode():
        assert torch.equal(model.item_embedding(tensors), loaded.item_embedding(tensors))
    assert TwoTowerConfig(**checkpoint["config"]).embedding_dim == 128


def test_loss_is_softmax_with_logq_subtracted_and_duplicates_masked() -> None:
    torch.manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    v = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    log_q = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    logits = u @ v.T / 0.1 - log_q[None, :]
    expected = -torch.log_softmax(logits, dim=1).diagonal().mean()
    got = in_batch_softmax_loss(u, v, torch.tensor([1, 2, 3]), log_q, 0.1)
    assert torch.allclose(got, expected)
    # Rows 0 and 1 hold the same item: each is masked out of the other's negatives.
    masked = in_batch_softmax_loss(u, v, torch.tensor([1, 1, 3]), log_q, 0.1)
    logits[0, 1] = logits[1, 0] = -torch.inf
    assert torch.allclose(masked, -torch.log_softmax(logits, dim=1).diagonal().mean())


@pytest.mark.parametrize(
    ("feature", "value", "rule"),
    [
        ("user_skip_30d_ratio", 1.5, "outside the contract"),
        ("item_genre_code", "polka", "not an allowed code"),
        ("user_tenure_days", np.nan, "is null"),
    ],
)
def test_rows_that_break_the_contract_are_refused(feature: str, value: object, rule: str) -> None:
    user_f, item_f = _features()
    cols = synthetic_columns(50)
    validate_features(cols, user_f + item_f, "features.training_examples")  # clean data passes
    if isinstance(value, str):
        cols[feature] = cols[feature].copy()
    else:
        cols[feature] = cols[feature].astype(np.float64)
    cols[feature][17] = value
    with pytest.raises(ContractViolation, match=rf"{feature}.*{rule}") as err:
        validate_features(cols, user_f + item_f, "features.training_examples")
    assert "row 17" in str(err.value)


def test_missing_contract_column_is_refused() -> None:
    user_f, item_f = _features()
    cols = synthetic_columns(10)
    del cols["item_age_days"]
    with pytest.raises(ContractViolation, match="item_age_days is missing"):
        validate_features(cols, user_f + item_f, "features.training_examples")
