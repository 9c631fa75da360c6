"""Does the offline evaluation rank like the API? And what does the logged holdout reward? (issue 12)

Run (from the repo root, on a STREAMREC_HOME that `streamrec demo` produced, so it has a ground truth):
    .venv/bin/python bench/offline_paths.py HOME [--epochs 3] [--seed 7]

It refits the split model exactly as `streamrec train` does (same data, config, seed; deterministic), then
ranks every held-out user three ways, all with split-time features and sources, seen items dropped:

- `offline`: `models_ml.offline.recommend_offline`, what `streamrec train` writes to ops.offline_recommendations;
- `served path`: the API's own `Recommender.candidates` (no exploration, no fairness slots) on a ServingBundle
  built in memory from the same split model, the split's feature snapshot and the split's candidate sources;
- the popularity baseline of the offline evaluation, and the oracle (top 10 unseen items by true relevance).

Each list is scored on the logged holdout (Recall / NDCG / Hit@10, as evaluation.offline_metrics does) and
valued by the ground truth (expected engaged slots per page, as `streamrec simulate` values pages). It also
prints the two-tower score's play-vs-skip AUC on its training rows and on the holdout window's, and how much
of the holdout's positives the logging policy's own exposure explains. A difference between
`offline` and `served path` would be a bug in one of them; the same figures on both mean the offline path is
the served one and any disagreement with the truth comes from the holdout itself.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from streamrec.api.config import ApiSettings
from streamrec.api.services.fairness import ExposureTracker
from streamrec.api.services.recommender import Recommender
from streamrec.api.services.serving_bundle import build_serving_bundle
from streamrec.contracts.schema import load_contract
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect
from streamrec.lab.truth import load_truth
from streamrec.models_ml.data import load_training_data
from streamrec.models_ml.index import build_index
from streamrec.models_ml.model import TwoTowerConfig
from streamrec.models_ml.offline import PolicyLists, embed, metrics_at_k, recommend_offline, split_sources
from streamrec.models_ml.tensors import take_rows, to_tensors
from streamrec.models_ml.train import (
    TrainConfig,
    auc,
    candidate_sources,
    deterministic,
    fit_models,
    two_tower_scores,
)

K = 10


def _table(columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({name: pa.array(values) for name, values in columns.items()})


def split_bundle(data, fit, train_cfg: TrainConfig):
    """A ServingBundle of the split model over the split's snapshot and sources (what serving would build)."""
    item_t = to_tensors(data.item_snapshot_split, data.item_features)
    item_ids = data.item_snapshot_split["item_id"].astype(np.int64)
    item_emb = embed(fit.model.item_embedding, item_t)
    index, info = build_index(item_emb)
    sizes = train_cfg.source_sizes()
    sources = split_sources(data, item_emb, sizes, train_cfg.ease_l2)
    at_split_n = data.item_neighbours["as_of"] == np.datetime64(data.split_as_of)
    at_split_r = data.recent_items["as_of"] == np.datetime64(data.split_as_of)
    neighbours = take_rows(data.item_neighbours, at_split_n)
    recent = take_rows(data.recent_items, at_split_r)
    history = sources.history
    assert history is not None
    counts = np.diff(history.indptr)
    user_history = {
        "user_id": np.repeat(history.user_ids, counts),
        "item_id": item_ids[history.item_rows],
    }
    return build_serving_bundle(
        version="split",
        manifest_sha256="",
        two_tower=fit.model,
        ranker=fit.ranker,
        index=index,
        item_ids=item_ids,
        online_user_features=_table(data.user_snapshot_split),
        online_item_features=_table(data.item_snapshot_split),
        item_embeddings=item_emb,
        index_kind=info.kind,
        candidate_sources=candidate_sources(sizes, train_cfg.ease_l2),
        item_neighbours=_table({k: neighbours[k] for k in ("item_id", "neighbour_item_id", "similarity_score")}),
        user_recent_items=_table({k: recent[k] for k in ("user_id", "item_id")}),
        ease_weights=sources.ease_weights,
        user_history=_table(user_history),
    )


def main() -> None:
    """Print the three rankings' holdout metrics and truth values, their overlap, and the holdout's exposure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--two-tower-inputs", action="store_true", help="the ranker reads the two-tower score")
    args = parser.parse_args()
    settings = Settings(home=args.home.resolve())
    contract = load_contract()
    train_cfg = TrainConfig(ranker_two_tower_inputs=args.two_tower_inputs)
    data = load_training_data(settings, contract, holdout_days=train_cfg.holdout_days)
    with deterministic(args.seed):
        fit = fit_models(data, args.epochs, args.seed, train_cfg, tt_cfg=copy.deepcopy(TwoTowerConfig()))
        offline = recommend_offline(fit.model, fit.ranker, data, train_cfg.source_sizes(), train_cfg.ease_l2)
    users = offline.user_ids
    seen: dict[int, set[int]] = {}
    for u, i in zip(data.seen_pairs["user_id"].tolist(), data.seen_pairs["item_id"].tolist(), strict=True):
        seen.setdefault(u, set()).add(i)

    bundle = split_bundle(data, fit, train_cfg)
    config = ApiSettings.from_env({}, fairness_cap=0.0, exploration="none", seed=0)
    recommender = Recommender(config.with_home(settings), ExposureTracker())
    served = PolicyLists()
    with torch.inference_mode():
        for user in users.tolist():
            rows = recommender.candidates(bundle, user, bundle.user_row(user))[0]
            ids = bundle.item_ids[rows]
            fresh = ids[~np.isin(ids, np.fromiter(seen.get(user, ()), np.int64))]
            served.items.append(fresh[:K])
            served.scores.append(np.zeros(min(K, len(fresh))))

    with connect(settings, read_only=True) as con:
        truth = load_truth(con)
    oracle_lists = PolicyLists()  # unlike the simulator's Oracle, seen items dropped: the holdout has none
    catalogue = bundle.item_ids[np.isin(bundle.item_ids, truth.item_ids)]
    for user in users.tolist():
        items = catalogue[~np.isin(catalogue, np.fromiter(seen.get(user, ()), np.int64))]
        relevance = truth.relevance(np.full(len(items), user), items)
        oracle_lists.items.append(items[np.argsort(-relevance, kind="stable")[:K]])
        oracle_lists.scores.append(np.zeros(K))

    exam = truth.examination_probability(np.arange(1, K + 1, dtype=np.float64), K)

    def engaged(lists: PolicyLists) -> float:
        values = []
        for user, items in zip(users.tolist(), lists.items, strict=True):
            rel = truth.relevance(np.full(len(items), user), np.asarray(items, np.int64))
            values.append(float((rel * exam[: len(rel)]).sum()))
        return float(np.mean(values))

    policies = {
        "popularity (offline baseline)": offline.lists["popularity", "ranking"],
        "model, offline path (recommend_offline)": offline.lists["model", "ranking"],
        "model, served path (Recommender.candidates)": served,
        "oracle (top 10 unseen by true relevance)": oracle_lists,
    }
    values = {name: engaged(lists) for name, lists in policies.items()}
    base, best = values["popularity (offline baseline)"], values["oracle (top 10 unseen by true relevance)"]
    print(f"held-out users {len(users)}, split {data.split_as_of}, latest {data.latest_as_of}")
    # Inverse-exposure recall: each held-out positive weighted by 1 / its share of the logging policy's slots,
    # so an item the logging policy rarely showed counts as much as its few chances to be found deserve.
    weight = 1.0 / truth.exposure_weights()

    def ips_recall(lists: PolicyLists) -> float:
        out = []
        for user, items in zip(users.tolist(), lists.items, strict=True):
            held = np.fromiter(offline.holdout[user], np.int64)
            w = weight[truth.item_rows(held)]
            out.append(float(w[np.isin(held, items[:K])].sum() / w.sum()))
        return float(np.mean(out))

    print(
        "| ranking | Recall@10 | NDCG@10 | Hit@10 | inverse-exposure Recall@10 | true engaged slots / page "
        "| share of the oracle's lift |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, lists in policies.items():
        m = metrics_at_k(users, lists, offline.holdout, K)
        share = (values[name] - base) / (best - base)
        print(
            f"| {name} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | {m['hit@10']:.4f} | {ips_recall(lists):.4f} | "
            f"{values[name]:.3f} | {share:+.1%} |"
        )
    same = [
        len(set(a.tolist()) & set(b.tolist())) / max(len(a), 1)
        for a, b in zip(offline.lists["model", "ranking"].items, served.items, strict=True)
    ]
    pairs = zip(offline.lists["model", "ranking"].items, served.items, strict=True)
    identical = np.mean([np.array_equal(a, b) for a, b in pairs])
    print(f"offline vs served path: top-10 overlap {np.mean(same):.4f}, identical order {identical:.4f}")

    # The two-tower score as a ranker input: on its own training rows (it has seen every positive) against the
    # holdout window's logged rows (plays vs skips after the split), the same split model.
    after = load_training_data(settings, contract, holdout_days=0).examples
    after = take_rows(after, after["event_ts"] >= np.datetime64(data.split_as_of))
    features = data.user_features + data.item_features
    for name, rows in (("training rows", data.examples), ("holdout-window rows", after)):
        scores = two_tower_scores(fit.model, to_tensors(rows, features)).numpy()
        print(f"two-tower score, play vs skip AUC on {name} ({len(scores)}): {auc(rows['label'], scores):.3f}")

    # What the holdout rewards: the logging policy shows items by Zipf popularity, and a positive needs a showing.
    holdout_items = np.concatenate([np.fromiter(v, np.int64) for v in offline.holdout.values()])
    exposure = truth.exposure_weights()[truth.item_rows(holdout_items)]
    top_share = np.sort(truth.exposure_weights())[::-1]
    n_top = max(1, len(top_share) // 20)
    in_top = np.isin(holdout_items, truth.item_ids[np.argsort(-truth.exposure_weights())[:n_top]]).mean()
    print(
        f"holdout positives: {len(holdout_items)}; {in_top:.1%} on the logging policy's 5% most shown items "
        f"(which get {top_share[:n_top].sum():.1%} of its slots); mean logging weight x catalogue size "
        f"{exposure.mean() * len(top_share):.2f}"
    )


if __name__ == "__main__":
    main()
