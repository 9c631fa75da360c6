"""Offline recommendations for held-out users, for the model and a popularity baseline, and their write-out.

For each held-out user (a user with positives in the holdout window) both policies retrieve 500
items and rank the top 10, excluding items the user interacted with before the split:
- `model`: two-tower retrieval through a FAISS index over split-time item embeddings, then the ranker;
- `popularity`: items by positives before the split (retrieval and ranking use the same order).
Rows go to ops.offline_recommendations and the ground truth to ops.offline_holdout in one
transaction; dbt's evaluation models compute the metrics from them in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, transaction
from streamrec.models_ml.data import TrainingData
from streamrec.models_ml.index import build_index, search
from streamrec.models_ml.model import TwoTower
from streamrec.models_ml.ranker import Ranker
from streamrec.models_ml.sources import CandidateSources, SourceSizes, build_sources, merged_candidates
from streamrec.models_ml.tensors import take_rows, to_tensors

RETRIEVAL_K = 500
RANKING_K = 10
CHUNK_USERS = 256  # users ranked per forward pass (x 500 candidates)


@dataclass
class PolicyLists:
    """Per held-out user: ranked item ids and scores for one policy and stage."""

    items: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)


@dataclass
class OfflineResult:
    """Recommendations of both policies for the held-out users, the ground truth and headline metrics."""

    user_ids: np.ndarray
    lists: dict[tuple[str, str], PolicyLists]  # (policy, stage) -> lists aligned with user_ids
    holdout: Mapping[int, set[int]]
    metrics: dict[str, float]
    # The model's merged candidates per held-out user (rows of `item_ids`, seen items dropped) and their ranker
    # inputs by name, aligned with user_ids: what the blend is chosen on (models_ml.blend)
    candidates: list[np.ndarray] = field(default_factory=list)
    inputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _group(users: np.ndarray, items: np.ndarray) -> dict[int, set[int]]:
    groups: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        groups.setdefault(u, set()).add(i)
    return groups


def _gather(tensors: Mapping[str, Tensor], rows: np.ndarray) -> dict[str, Tensor]:
    index = torch.from_numpy(rows.astype(np.int64))
    return {name: t[index] for name, t in tensors.items()}


@torch.inference_mode()
def embed(tower_fn, tensors: Mapping[str, Tensor], batch_size: int = 8192) -> np.ndarray:
    """Run one tower over named tensors in batches; returns float32 (N, d)."""
    n = len(next(iter(tensors.values())))
    parts = [tower_fn(_gather(tensors, np.arange(s, min(n, s + batch_size)))) for s in range(0, n, batch_size)]
    return torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros((0, 128), np.float32)


def metrics_at_k(user_ids: np.ndarray, lists: PolicyLists, holdout: Mapping[int, set[int]], k: int) -> dict[str, float]:
    """Mean recall@k, NDCG@k and hit@k over users (binary relevance)."""
    recall, ndcg, hit = [], [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for user, items in zip(user_ids.tolist(), lists.items, strict=True):
        truth = holdout[user]
        rel = np.array([i in truth for i in items[:k].tolist()], dtype=np.float64)
        ideal = discounts[: min(len(truth), k)].sum()
        recall.append(rel.sum() / len(truth))
        ndcg.append(float((rel * discounts[: len(rel)]).sum() / ideal))
        hit.append(float(rel.any()))
    return {f"recall@{k}": float(np.mean(recall)), f"ndcg@{k}": float(np.mean(ndcg)), f"hit@{k}": float(np.mean(hit))}


def split_sources(
    data: TrainingData, item_emb: np.ndarray, sizes: SourceSizes, ease_l2: float = 100.0
) -> CandidateSources:
    """The candidate sources as they stood at the split (neighbours, recent items, popularity at split as_of)."""
    import scipy.sparse as sp

    from streamrec.models_ml.ease import MAX_EASE_ITEMS, fit_ease
    from streamrec.models_ml.sources import catalogue_rows

    at_split_n = data.item_neighbours["as_of"] == np.datetime64(data.split_as_of)
    at_split_r = data.recent_items["as_of"] == np.datetime64(data.split_as_of)
    item_ids = data.item_snapshot_split["item_id"].astype(np.int64)
    weights, history = None, None
    if sizes.ease > 0 and len(item_ids) <= MAX_EASE_ITEMS:
        events = data.positive_events
        cols = catalogue_rows(item_ids, events["item_id"])
        ok = cols >= 0
        users, rows = np.unique(events["user_id"][ok].astype(np.int64), return_inverse=True)
        x = sp.csr_matrix((np.ones(int(ok.sum())), (rows, cols[ok])), shape=(len(users), len(item_ids)))
        x.data[:] = 1.0
        weights = fit_ease(x, ease_l2)
        history = {"user_id": events["user_id"][ok], "item_id": events["item_id"][ok]}
    return build_sources(
        item_ids,
        take_rows(data.item_neighbours, at_split_n),
        take_rows(data.recent_items, at_split_r),
        data.item_snapshot_split["item_popularity_30d_score"],
        item_emb,
        sizes,
        ease_weights=weights,
        history=history,
    )


def recommend_offline(
    model: TwoTower, ranker: Ranker, data: TrainingData, sizes: SourceSizes | None = None, ease_l2: float = 100.0
) -> OfflineResult:
    """Both policies' top-500 retrieval and top-10 ranking for every held-out user with split-time features.

    The model's ranking is the served pipeline's: the merged candidates of every source at the split
    (two-tower, item-to-item, popularity), their source inputs, then the ranker; seen items dropped.
    """
    sizes = sizes or SourceSizes()
    holdout = _group(data.holdout_pairs["user_id"], data.holdout_pairs["item_id"])
    seen = _group(data.seen_pairs["user_id"], data.seen_pairs["item_id"])
    split_users = data.user_snapshot_split["user_id"].astype(np.int64)
    user_ids = np.array(sorted(u for u in holdout if u in set(split_users.tolist())), dtype=np.int64)
    if len(user_ids) == 0:
        raise StreamRecError(f"no held-out user has features at the split {data.split_as_of}: need more history")
    holdout = {u: holdout[u] for u in user_ids.tolist()}
    user_rows = np.searchsorted(split_users, user_ids)

    user_t = to_tensors(data.user_snapshot_split, data.user_features)
    item_t = to_tensors(data.item_snapshot_split, data.item_features)
    item_ids = data.item_snapshot_split["item_id"].astype(np.int64)
    user_emb = embed(model.user_embedding, _gather(user_t, user_rows))  # (U, d)
    item_emb = embed(model.item_embedding, item_t)  # (N, d)
    index, _ = build_index(item_emb, queries=user_emb)
    max_seen = max((len(seen.get(u, ())) for u in user_ids.tolist()), default=0)
    scores, rows = search(index, user_emb, max(RETRIEVAL_K + max_seen, sizes.two_tower))
    sources = split_sources(data, item_emb, sizes, ease_l2)
    split_popularity = np.nan_to_num(data.item_snapshot_split["item_popularity_30d_score"].astype(np.float64))
    popular_rows = np.lexsort((item_ids, -split_popularity))  # the popularity source's list, ties by item id

    lists = {key: PolicyLists() for key in (("model", "retrieval"), ("model", "ranking"))}
    lists |= {("popularity", "retrieval"): PolicyLists(), ("popularity", "ranking"): PolicyLists()}
    candidates: list[np.ndarray] = []
    inputs: list[dict[str, np.ndarray]] = []
    for n, user in enumerate(user_ids.tolist()):
        user_seen = seen.get(user, set())
        unseen = [j for j, r in enumerate(rows[n].tolist()) if r >= 0 and int(item_ids[r]) not in user_seen]
        keep = np.array(unseen[:RETRIEVAL_K], dtype=np.int64)
        lists["model", "retrieval"].items.append(item_ids[rows[n][keep]])
        lists["model", "retrieval"].scores.append(scores[n][keep].astype(np.float64))
        found = rows[n][rows[n] >= 0][: sizes.two_tower]
        merged, named = merged_candidates(sources, user, user_emb[n : n + 1], found, popular_rows)
        fresh = ~np.isin(item_ids[merged], np.fromiter(user_seen, dtype=np.int64, count=len(user_seen)))
        candidates.append(merged[fresh])
        inputs.append({name: values[fresh] for name, values in named.items()})

    ranker.eval()
    for start in range(0, len(user_ids), CHUNK_USERS):
        chunk = range(start, min(len(user_ids), start + CHUNK_USERS))
        pair_user = np.concatenate([np.full(len(candidates[n]), user_rows[n]) for n in chunk])
        pair_item = np.concatenate([candidates[n] for n in chunk])
        batch = _gather(user_t, pair_user) | _gather(item_t, pair_item)
        for name in inputs[chunk[0]] if len(chunk) else ():
            batch[name] = torch.from_numpy(np.concatenate([inputs[n][name] for n in chunk]).astype(np.float32))
        with torch.inference_mode():
            logits = ranker(batch).numpy()
        offset = 0
        for n in chunk:
            size = len(candidates[n])
            part = logits[offset : offset + size]
            offset += size
            order = np.argsort(-part, kind="stable")[:RANKING_K]
            lists["model", "ranking"].items.append(item_ids[candidates[n][order]])
            lists["model", "ranking"].scores.append(part[order].astype(np.float64))

    counts = dict(
        zip(data.item_popularity["item_id"].tolist(), data.item_popularity["positives"].tolist(), strict=True)
    )
    pop_scores = np.array([counts.get(int(i), 0.0) for i in item_ids], dtype=np.float64)
    pop_order = np.lexsort((item_ids, -pop_scores))  # most positives first, ties by item id
    for user in user_ids.tolist():
        user_seen = seen.get(user, set())
        ranked = [r for r in pop_order.tolist() if int(item_ids[r]) not in user_seen][:RETRIEVAL_K]
        for stage, k in (("retrieval", RETRIEVAL_K), ("ranking", RANKING_K)):
            lists["popularity", stage].items.append(item_ids[ranked[:k]])
            lists["popularity", stage].scores.append(pop_scores[ranked[:k]])

    metrics: dict[str, float] = {"heldout_users": float(len(user_ids))}
    for policy in ("model", "popularity"):
        for name, value in metrics_at_k(user_ids, lists[policy, "ranking"], holdout, RANKING_K).items():
            metrics[f"{policy}_{name}"] = value
        retrieval = metrics_at_k(user_ids, lists[policy, "retrieval"], holdout, RETRIEVAL_K)
        metrics[f"{policy}_retrieval_recall@{RETRIEVAL_K}"] = retrieval[f"recall@{RETRIEVAL_K}"]
    return OfflineResult(
        user_ids=user_ids,
        lists=lists,
        holdout=holdout,
        metrics=metrics,
        candidates=candidates,
        inputs=inputs,
        item_ids=item_ids,
    )


def offline_tables(version: str, result: OfflineResult) -> tuple[pa.Table, pa.Table]:
    """Arrow tables shaped like ops.offline_recommendations and ops.offline_holdout."""
    users, stages, policies, items, ranks, scores = [], [], [], [], [], []
    for (policy, stage), lists in result.lists.items():
        for user, ids, vals in zip(result.user_ids.tolist(), lists.items, lists.scores, strict=True):
            users.append(np.full(len(ids), user, dtype=np.int64))
            items.append(ids.astype(np.int64))
            ranks.append(np.arange(1, len(ids) + 1, dtype=np.int32))
            scores.append(vals.astype(np.float64))
            stages += [stage] * len(ids)
            policies += [policy] * len(ids)
    n = sum(len(u) for u in users)
    recommendations = pa.table(
        {
            "version": pa.array([version] * n, pa.string()),
            "user_id": pa.array(np.concatenate(users), pa.int64()),
            "stage": pa.array(stages, pa.string()),
            "policy": pa.array(policies, pa.string()),
            "item_id": pa.array(np.concatenate(items), pa.int64()),
            "rank": pa.array(np.concatenate(ranks), pa.int32()),
            "score": pa.array(np.concatenate(scores), pa.float64()),
        }
    )
    pairs = sorted((u, i) for u, truth in result.holdout.items() for i in truth)
    holdout = pa.table(
        {
            "version": pa.array([version] * len(pairs), pa.string()),
            "user_id": pa.array([u for u, _ in pairs], pa.int64()),
            "item_id": pa.array([i for _, i in pairs], pa.int64()),
        }
    )
    return recommendations, holdout


def write_offline(settings: Settings, version: str, result: OfflineResult) -> int:
    """Replace this version's offline rows in one transaction; returns the number of recommendation rows."""
    recommendations, holdout = offline_tables(version, result)
    with connect(settings) as con:
        con.register("offline_recommendations_new", recommendations)
        con.register("offline_holdout_new", holdout)
        with transaction(con):
            con.execute("delete from ops.offline_recommendations where version = ?", [version])
            con.execute("delete from ops.offline_holdout where version = ?", [version])
            con.execute(
                "insert into ops.offline_recommendations (version, user_id, stage, policy, item_id, rank, score) "
                "select version, user_id, stage, policy, item_id, rank, score from offline_recommendations_new"
            )
            con.execute(
                "insert into ops.offline_holdout (version, user_id, item_id) "
                "select version, user_id, item_id from offline_holdout_new"
            )
    return recommendations.num_rows
