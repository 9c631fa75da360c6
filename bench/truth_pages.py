"""Value one trained bundle's pages with the ground truth: engaged slots and watch seconds per page, oracle share.

Run (from the repo root, on a STREAMREC_HOME that `streamrec demo` or generate + build + train produced):
    .venv/bin/python bench/truth_pages.py HOME VERSION [USERS]

For USERS (default 600) users of the bundle drawn with a fixed seed, it values the popularity (holdout) page, the
oracle page (top 10 servable items by true relevance), the two-tower's FAISS top 10, the item-to-item source's top
10, the bundle's EASE source's top 10 (its L2 chosen on validation), EASE refit with L2 100 on the same positives
(the "~9%" EASE of docs/benchmarks.md), and the full pipeline's ranking (the API's `Recommender.candidates`, no
exploration, no fairness slots), the way `streamrec simulate` values pages (`expectations`: examination x
relevance, and watch = play x expected watch share x item length). A quick, in-process proxy of the demo's
simulation: `ate/slot` is (engaged slots - popularity's) / 10, `share` the share of the oracle's lift over
popularity.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from streamrec.api.config import ApiSettings
from streamrec.api.services.fairness import ExposureTracker
from streamrec.api.services.recommender import Recommender
from streamrec.api.services.serving_bundle import load_serving_bundle
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect
from streamrec.lab.simulate import Oracle, _Behaviour
from streamrec.lab.truth import load_truth


def main() -> None:
    """Print one line per policy: engaged slots, watch seconds, oracle share, ATE per slot, watch difference."""
    home, version = Path(sys.argv[1]).resolve(), sys.argv[2]
    n_users = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    settings = Settings(home=home)
    with connect(settings, read_only=True) as con:
        truth = load_truth(con)
        lengths = dict(con.sql("select item_id, length_seconds from raw.items").fetchall())
    bundle = load_serving_bundle(settings.artifacts_dir / version, expected_version=version)
    recommender = Recommender(
        ApiSettings.from_env({}, seed=0, exploration="none").with_home(settings), ExposureTracker()
    )
    # the simulator's behaviour model over this world (its constructor wants a running simulation's world)
    behaviour = _Behaviour.__new__(_Behaviour)
    behaviour.world = SimpleNamespace(truth=truth, item_length={int(k): float(v) for k, v in lengths.items()})
    behaviour.complete_base, behaviour.complete_slope = truth.param("complete_base"), truth.param("complete_slope")
    behaviour.a0, behaviour.a1 = truth.param("watch_beta_a0"), truth.param("watch_beta_a1")
    behaviour.b = truth.param("watch_beta_b")
    oracle = Oracle(truth)
    oracle.set_catalogue(version, bundle.item_ids)
    known = bundle.user_ids[np.isin(bundle.user_ids, truth.user_ids)]
    users = np.random.default_rng(0).choice(known, min(n_users, len(known)), replace=False)
    popular = bundle.item_ids[recommender.popular(bundle, 10, None, "holdout").rows]
    values: dict[str, list[tuple[float, float]]] = {}
    ease_100 = None
    if bundle.sources is not None and bundle.sources.history is not None:
        import dataclasses

        import scipy.sparse as sp

        from streamrec.models_ml.ease import fit_ease

        history = bundle.sources.history
        counts = np.diff(history.indptr)
        x = sp.csr_matrix(
            (np.ones(len(history.item_rows)), (np.repeat(np.arange(len(counts)), counts), history.item_rows)),
            shape=(len(counts), bundle.n_items),
        )
        x.data[:] = 1.0
        ease_100 = dataclasses.replace(bundle.sources, ease_weights=fit_ease(x, 100.0))
    with torch.inference_mode():
        for user in users.tolist():
            row = bundle.user_row(user)
            _, query = recommender.user_query(bundle, user, row)
            faiss_rows, _ = recommender.retrieve(bundle, query)
            ranked = recommender.candidates(bundle, user, row)[0]
            pages = {
                "popularity": popular,
                "oracle": oracle.page(version, user, 10),
                "two_tower": bundle.item_ids[faiss_rows[:10]],
                "pipeline": bundle.item_ids[ranked[:10]],
            }
            if bundle.sources is not None:
                scores = bundle.sources.neighbours.scores(bundle.sources.recent.of(user), bundle.n_items)
                pages["item_neighbours"] = bundle.item_ids[np.argsort(-scores, kind="stable")[:10]]
                if bundle.sources.ease_weights is not None:
                    ease = bundle.sources.ease_scores(user)
                    pages["ease_bundle"] = bundle.item_ids[np.argsort(-ease, kind="stable")[:10]]
            if ease_100 is not None:
                pages["ease_l2_100"] = bundle.item_ids[np.argsort(-ease_100.ease_scores(user), kind="stable")[:10]]
            for name, page in pages.items():
                values.setdefault(name, []).append(behaviour.expectations(user, np.asarray(page)))
    mean = {name: np.mean(np.array(v), axis=0) for name, v in values.items()}
    base, best = mean["popularity"], mean["oracle"]
    for name, (engaged, watch) in mean.items():
        print(
            f"{version} {name:16s} engaged {engaged:.3f} watch {watch:8.1f} s share "
            f"{(engaged - base[0]) / (best[0] - base[0]):+.3f} ate/slot {(engaged - base[0]) / 10:+.4f} "
            f"watch-diff/page {watch - base[1]:+.1f} s"
        )


if __name__ == "__main__":
    main()
