"""EASE's L2 and the source blend are chosen on validation, stored in the bundle, and applied by serving.

MovieLens-100K has no logged skips, so the ranker's training rows have one class and the bundle's ranker is
the pass-through over the EASE score: the case the blend is for. A real warehouse (`streamrec load
movielens`, `streamrec build`), the training entry point, then the API's own Recommender on the bundle.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from streamrec.api.config import ApiSettings
from streamrec.api.services.fairness import ExposureTracker
from streamrec.api.services.recommender import Recommender
from streamrec.api.services.serving_bundle import load_serving_bundle
from streamrec.batch.build import build
from streamrec.batch.migrate import init_db
from streamrec.batch.movielens import load_movielens
from streamrec.contracts import load_contract
from streamrec.core.settings import Settings
from streamrec.models_ml.blend import BLEND_TERMS, choose_blend
from streamrec.models_ml.bundle import verify_bundle
from streamrec.models_ml.data import load_training_data
from streamrec.models_ml.ease import fit_ease
from streamrec.models_ml.ranker import SOURCE_TIE_WEIGHT
from streamrec.models_ml.sources import EASE_WEIGHTS_FILE, catalogue_rows, merged_candidates
from streamrec.models_ml.train import TrainConfig, train, train_config_from_checkpoint
from tests.integration.test_movielens import ML100K

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ML100K / "ml-100k.inter").is_file(), reason=f"MovieLens-100K not at {ML100K}"),
]

GRID = (10.0, 300.0, 3000.0)


def test_ease_l2_and_blend_are_chosen_on_validation_stored_and_served(settings: Settings) -> None:
    init_db(settings)
    load_movielens(settings, ML100K)
    build(settings, variables={"evaluation_threshold_severity": "warn"})
    # MovieLens's 7-day holdout has few users: let the blend be chosen on them (the default needs 200)
    cfg = TrainConfig(ease_l2_grid=GRID, blend_min_users=1, ease_l2=100.0)
    train(settings, epochs=1, seed=3, version="vblend", train_cfg=cfg)
    bundle_dir = settings.artifacts_dir / "vblend"
    metrics = verify_bundle(bundle_dir, expected_version="vblend").metrics
    validation = metrics["validation"]

    # --- L2: the grid's best on the validation fold, and the one the bundle's EASE was fitted with
    by_l2 = validation["ease_l2"]["ndcg@10_by_l2"]
    assert set(by_l2) == {f"{v:g}" for v in GRID} and len(set(by_l2.values())) == len(GRID)
    chosen = validation["ease_l2"]["chosen"]
    assert by_l2[f"{chosen:g}"] == max(by_l2.values())
    assert metrics["hyperparameters"]["ease_l2"] == chosen
    assert train_config_from_checkpoint(bundle_dir / "ranker.pt").ease_l2 == chosen
    data = load_training_data(settings, load_contract(), holdout_days=0)  # what the refit learned from
    item_ids = np.load(bundle_dir / "item_ids.npy")
    cols = catalogue_rows(item_ids, data.positive_events["item_id"])
    users, rows = np.unique(data.positive_events["user_id"][cols >= 0], return_inverse=True)
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols[cols >= 0])), shape=(len(users), len(item_ids)))
    x.data[:] = 1.0
    np.testing.assert_allclose(np.load(bundle_dir / EASE_WEIGHTS_FILE), fit_ease(x, chosen), atol=1e-6)

    # --- blend: chosen on the holdout (its best value, not below no blend), stored in the ranker and manifest
    record = validation["blend"]
    weights = record["chosen"]
    assert weights and set(weights) <= set(BLEND_TERMS)
    assert record["ndcg@10"] >= record["ndcg@10_without_blend"]
    assert metrics["ranker_blend"] == weights
    bundle = load_serving_bundle(bundle_dir, expected_version="vblend")
    assert bundle.ranker.cfg.source_score == "ease_score" and bundle.ranker.cfg.blend == pytest.approx(weights)
    from typer.testing import CliRunner

    from streamrec.cli.main import app

    shown = CliRunner().invoke(app, ["versions"], env={"STREAMREC_HOME": str(settings.home), "COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert f"ease_l2={chosen:g} (validated)" in shown.output and "blend " in shown.output

    # --- serving: the API's candidates are ordered by exactly ease + sum(w * term), recomputed here
    config = ApiSettings.from_env({}, fairness_cap=0.0, exploration="none", seed=0).with_home(settings)
    recommender = Recommender(config, ExposureTracker())
    reordered = 0
    for user in bundle.user_ids[:60].tolist():
        row = bundle.user_row(int(user))
        served_rows, logits = recommender.candidates(bundle, int(user), row)
        _, query = recommender.user_query(bundle, int(user), row)
        faiss_rows, _ = recommender.retrieve(bundle, query)
        merged, inputs = merged_candidates(bundle.sources, int(user), query, faiss_rows, bundle.popular_rows)
        expected = inputs["ease_score"].astype(np.float64) + SOURCE_TIE_WEIGHT * inputs["two_tower_score"]
        for name, weight in weights.items():
            term = 1.0 / inputs[name] if name.endswith("_rank") else inputs[name]
            expected = expected + weight * term
        by_row = dict(zip(merged.tolist(), expected.tolist(), strict=True))
        np.testing.assert_allclose(logits, [by_row[r] for r in served_rows.tolist()], rtol=1e-4, atol=1e-4)
        plain = inputs["ease_score"].astype(np.float64)
        reordered += int(not np.array_equal(merged[np.argsort(-plain, kind="stable")][:10], served_rows[:10]))
    assert reordered > 0, "the stored blend never changed a top 10: serving ignores it or it is too small to matter"


def test_choose_blend_finds_the_known_weights() -> None:
    """Popularity breaks the base score's ties towards the relevant item: a popularity weight is chosen;
    when the base already ranks every relevant item first, no weight is (ties keep the smaller weights)."""
    rows = np.arange(20)
    base = np.zeros(20)
    base[:12] = 1.0  # the base cannot tell the first 12 apart
    popularity_rank = np.arange(20, 0, -1, dtype=np.float64)  # item 19 the most popular
    popularity_rank[11] = 1.0  # ... but item 11 is (relevant and) most popular
    inputs = [
        {
            "ease_score": base,
            "two_tower_score": np.zeros(20),
            "neighbour_score": np.zeros(20),
            "popularity_rank": popularity_rank,
        }
    ]
    weights, record = choose_blend("ease_score", [rows], inputs, [{11}], rows)
    assert set(weights) == {"popularity_rank"} and weights["popularity_rank"] > 0
    assert record["ndcg@10"] == pytest.approx(1.0) and record["ndcg@10_without_blend"] < 1.0

    perfect = dict(inputs[0], ease_score=np.where(rows == 11, 2.0, 1.0))
    weights, record = choose_blend("ease_score", [rows], [perfect], [{11}], rows)
    assert weights == {} and record["ndcg@10"] == pytest.approx(1.0)


def test_ranker_blend_survives_its_checkpoint(tmp_path) -> None:
    from streamrec.models_ml.ranker import RankerConfig, load_ranker, make_ranker, save_ranker
    from streamrec.models_ml.sources import EASE_SCORE, NEIGHBOUR_SCORE, POPULARITY_RANK

    ranker = make_ranker(
        [EASE_SCORE, NEIGHBOUR_SCORE, POPULARITY_RANK],
        RankerConfig(source_score="ease_score", blend={"neighbour_score": 0.5, "popularity_rank": 2.0}),
    )
    save_ranker(ranker, tmp_path / "ranker.pt", "sha")
    loaded = load_ranker(tmp_path / "ranker.pt")
    batch = {
        "ease_score": torch.tensor([1.0, 0.5]),
        "neighbour_score": torch.tensor([0.0, 2.0]),
        "popularity_rank": torch.tensor([4.0, 1.0]),
    }
    torch.testing.assert_close(loaded(batch), torch.tensor([1.0 + 2.0 / 4.0, 0.5 + 1.0 + 2.0]))
