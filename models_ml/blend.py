"""What `streamrec train` chooses on validation before it bundles: EASE's L2 weight and the source blend.

- **EASE's L2** (`choose_ease_l2`): a seeded per-user random `share` of the distinct positive (user, item)
  pairs before the split is held out; EASE is fitted on the rest with every L2 of the grid and scored by
  NDCG@10 on the held-out pairs (the rest masked), the protocol of RecBole's validation split. The split
  model, the offline figures and the refit then all use the chosen L2. The holdout split the offline
  figures come from is never looked at.
- **The blend** (`choose_blend`): when the ranker's training rows have one class (data without logged
  skips, such as ratings), the ranker passes the EASE source's score through; the blend adds the other
  sources' inputs to it, `ease + w_tt * two_tower + w_nb * neighbours + w_pop / popularity_rank`, with
  the weights chosen by NDCG@10 of the split models' merged candidates on the training run's holdout
  (models fitted before the split, items new to the user after it). The weights are stored in the
  ranker's checkpoint (`RankerConfig.blend`) and the manifest, and serving computes the same blend.

Both return a record for the manifest's metrics (`validation`): the grid, each setting's score, the
choice and how many users and pairs decided it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from streamrec.models_ml.ease import MAX_EASE_ITEMS, fit_ease
from streamrec.models_ml.ranker import TWO_TOWER_SCORE, blend_term
from streamrec.models_ml.sources import NEIGHBOUR_SCORE, POPULARITY_RANK, catalogue_rows

K = 10
MAX_VALIDATION_USERS = 5_000  # users scored per L2 (a seeded sample above it): bounds the users x items scores
# The blend's terms and the grid of each one's weight, relative to the term's scale: a weight w here is stored
# as w * mean |base score| / mean |term| over the validation candidates, so the grid means the same on any data.
BLEND_TERMS = (TWO_TOWER_SCORE.name, NEIGHBOUR_SCORE.name, POPULARITY_RANK.name)
BLEND_GRID = (0.0, 0.05, 0.1, 0.2, 0.4)


def ndcg_at_k(ranked: np.ndarray, truth: set[int], k: int = K) -> float:
    """Binary NDCG@k of one ranked id list against a set of relevant ids."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    rel = np.array([i in truth for i in ranked[:k].tolist()], dtype=np.float64)
    return float((rel * discounts[: len(rel)]).sum() / discounts[: min(len(truth), k)].sum())


def validation_fold(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Bool mask of a per-user random `share` of the rows (int(share * n) per user, users with >= 2 rows)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    for rows in np.split(order, np.flatnonzero(np.diff(users[order])) + 1):
        n_held = int(share * len(rows))
        if n_held and len(rows) >= 2:
            held[rng.permutation(rows)[:n_held]] = True
    return held


def choose_ease_l2(
    positive_events: Mapping[str, np.ndarray], item_ids: np.ndarray, grid: Sequence[float], share: float, seed: int
) -> tuple[float | None, dict[str, Any]]:
    """(the L2 of `grid` with the best validation NDCG@10, its record); (None, record) when it cannot choose."""
    record: dict[str, Any] = {"grid": [float(v) for v in grid], "share": share, "objective": "ndcg@10"}
    cols = catalogue_rows(item_ids, positive_events["item_id"])
    ok = cols >= 0
    pairs = np.unique(np.stack([np.asarray(positive_events["user_id"], np.int64)[ok], cols[ok]], 1), axis=0)
    if not len(grid) or len(item_ids) > MAX_EASE_ITEMS or not len(pairs):
        return None, record | {"chosen": None, "reason": "no grid, no positives or no EASE source"}
    users, user_rows = np.unique(pairs[:, 0], return_inverse=True)
    held = validation_fold(user_rows, share, seed)
    fit = sp.csr_matrix(
        (np.ones(int((~held).sum())), (user_rows[~held], pairs[~held, 1])), shape=(len(users), len(item_ids))
    )
    fit.data[:] = 1.0
    judged = np.unique(user_rows[held])
    if len(judged) > MAX_VALIDATION_USERS:
        judged = np.sort(np.random.default_rng(seed).choice(judged, MAX_VALIDATION_USERS, replace=False))
    if not len(judged):
        return None, record | {"chosen": None, "reason": "no user has enough positives to hold one out"}
    truth: dict[int, set[int]] = {}
    for u, item in zip(user_rows[held].tolist(), pairs[held, 1].tolist(), strict=True):
        truth.setdefault(u, set()).add(item)
    scores: dict[str, float] = {}
    for l2 in grid:
        weights = fit_ease(fit, float(l2))
        total = 0.0
        for start in range(0, len(judged), 1024):
            chunk = judged[start : start + 1024]
            history = fit[chunk]
            part = np.asarray(history @ weights, dtype=np.float32)
            coo = history.tocoo()
            part[coo.row, coo.col] = -np.inf  # the fitted positives are history, as serving's seen items
            top = np.argsort(-part, axis=1, kind="stable")[:, :K]
            total += sum(ndcg_at_k(top[n], truth[int(u)]) for n, u in enumerate(chunk.tolist()))
        scores[f"{float(l2):g}"] = total / len(judged)
    best = max(scores, key=lambda name: (scores[name], -grid.index(float(name))))  # ties: the first of the grid
    record |= {
        "chosen": float(best),
        "ndcg@10_by_l2": scores,
        "users": len(judged),
        "held_out_pairs": int(held.sum()),
    }
    return float(best), record


def _scale(values: Sequence[np.ndarray]) -> float:
    joined = np.abs(np.concatenate(values)) if values else np.zeros(0)
    return float(joined.mean()) if len(joined) and joined.mean() > 0 else 0.0


def choose_blend(
    base: str,
    candidates: Sequence[np.ndarray],
    inputs: Sequence[Mapping[str, np.ndarray]],
    truths: Sequence[set[int]],
    item_ids: np.ndarray,
    grid: Sequence[float] = BLEND_GRID,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The blend weights (input name -> weight) with the best NDCG@10 over the users' candidates, and a record.

    `candidates`: per user, catalogue rows (unseen items); `inputs`: the same rows' ranker inputs by name;
    `truths`: the items each user engaged with after the split. Every combination of BLEND_GRID weights is
    tried (ties: the smaller weights, which come first); each weight is stored rescaled to its term's scale.
    """
    record: dict[str, Any] = {"base": base, "terms": list(BLEND_TERMS), "grid": list(grid), "users": len(truths)}
    if not truths:
        return {}, record | {"chosen": {}, "reason": "no held-out user"}
    terms = {
        name: [blend_term(name, torch.from_numpy(np.asarray(i[name]))).numpy() for i in inputs] for name in BLEND_TERMS
    }
    base_scale = _scale([np.asarray(i[base], np.float64) for i in inputs])
    scale = {name: base_scale / s if (s := _scale(values)) else 0.0 for name, values in terms.items()}
    base_values = [np.asarray(i[base], np.float64) for i in inputs]
    results: list[tuple[float, tuple[float, ...]]] = []
    for combo in itertools.product(grid, repeat=len(BLEND_TERMS)):
        total = 0.0
        for n, rows in enumerate(candidates):
            score = base_values[n].copy()
            for weight, name in zip(combo, BLEND_TERMS, strict=True):
                if weight:
                    score += weight * scale[name] * terms[name][n]
            top = rows[np.argsort(-score, kind="stable")[:K]]
            total += ndcg_at_k(item_ids[top], truths[n])
        results.append((total / len(truths), combo))
    best_value, best_combo = max(results, key=lambda r: r[0])  # max keeps the first of equal values
    weights = {name: w * scale[name] for w, name in zip(best_combo, BLEND_TERMS, strict=True) if w}
    record |= {
        "chosen": weights,
        "chosen_relative": dict(zip(BLEND_TERMS, best_combo, strict=True)),
        "ndcg@10": best_value,
        "ndcg@10_without_blend": results[0][0],
        "held_out_pairs": int(sum(len(t) for t in truths)),
    }
    return weights, record
