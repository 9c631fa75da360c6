"""The ranker's training rows as it will see them: source inputs at each row's as_of, negatives from the sources.

At serving time the ranker orders the candidate sources' merged lists (two-tower FAISS top-N, item-to-item
neighbours of the user's recent items, popularity), so uniform negatives teach it a distinction it never
has to make. For each positive row this draws label-0 rows from

- the two-tower's top `depth` items for the row's user, scored against the items as they were at the
  row's own as_of (the item grid),
- the item-to-item source's top `depth` at that as_of (`features.user_recent_items` x `features.item_neighbours`),
- the popularity source's top `depth` at that as_of (by `item_popularity_30d_score`),
- and a few uniform catalogue items,

besides the logged skips already in `features.training_examples`. Every row (logged or drawn) then gets
each source's rank and score input (`models_ml.sources.SOURCE_FEATURES`) computed from the sources at its
own as_of, exactly as serving computes them from the bundle's copy at the serving as_of. Negatives take
the positive's user features and an item's features at the same as_of, so they are as point-in-time
correct as the positive; the positive's own item is never its own negative.

Work is per (as_of, user) key: a user's features, recent items and so source lists are the same for all of
their rows at one snapshot, so each key is scored against its snapshot's catalogue once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from streamrec.models_ml.data import TrainingData
from streamrec.models_ml.ease import MAX_EASE_ITEMS, fit_ease
from streamrec.models_ml.model import TwoTower
from streamrec.models_ml.sources import (
    EASE_RANK,
    EASE_SCORE,
    NEIGHBOUR_RANK,
    NEIGHBOUR_SCORE,
    POPULARITY_RANK,
    TWO_TOWER_RANK,
    SourceSizes,
    ranks_desc,
)
from streamrec.models_ml.tensors import Columns, take_rows, to_tensors

# The `source` column of a row: logged (an example) or the source a negative was drawn from (diagnostics).
SOURCE_CODES = {"logged": 0, "two_tower": 1, "item_neighbours": 2, "popularity": 3, "uniform": 4, "ease": 5}


def _draw(rng: np.random.Generator, candidates: np.ndarray, own: np.ndarray, n: int) -> np.ndarray:
    """`n` entries per row from its (P, k) candidate positions (k >= 2), never the row's own position."""
    row = np.arange(len(candidates))[:, None]
    position = rng.integers(0, candidates.shape[1], (len(candidates), n))
    picks = candidates[row, position]
    # a list holds an item once, so the next entry of a clash is another item
    nxt = candidates[row, (position + 1) % candidates.shape[1]]
    return np.where(picks == own[:, None], nxt, picks)


def _row_ranks(scores: np.ndarray, cap: int, positive_only: bool) -> np.ndarray:
    """Per row of (K, n) scores: 1-based ranks (ties by column), capped at cap + 1 (and past 0 if positive_only)."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    ranks = np.empty(scores.shape, dtype=np.float64)
    np.put_along_axis(
        ranks, order, np.broadcast_to(np.arange(1, scores.shape[1] + 1, dtype=np.float64), scores.shape), 1
    )
    ranks = np.minimum(ranks, cap + 1)
    return np.where(scores > 0, ranks, cap + 1) if positive_only else ranks


class _Drawn:
    """The negatives drawn for one snapshot's positives: catalogue positions, which positive, which source."""

    def __init__(self, rng: np.random.Generator, own: np.ndarray) -> None:
        self.rng, self.own = rng, own
        self.positions: list[np.ndarray] = []
        self.from_rows: list[np.ndarray] = []
        self.sources: list[np.ndarray] = []

    def add(self, candidates: np.ndarray, n: int, source: str, sel: np.ndarray | None = None) -> None:
        """`n` draws per selected positive (default: all) from its (P, k) candidate positions."""
        sel = np.arange(len(self.own)) if sel is None else sel
        if n <= 0 or not len(sel):
            return
        picks = _draw(self.rng, candidates, self.own[sel], n)
        self.positions.append(picks.reshape(-1))
        self.from_rows.append(np.repeat(sel, n))
        self.sources.append(np.full(picks.size, SOURCE_CODES[source]))


@torch.inference_mode()
def _embed(model: TwoTower, columns: Columns, features: Sequence, user: bool) -> np.ndarray:
    """One tower over named columns, in batches: float32 (N, d)."""
    tensors = to_tensors(columns, features)
    tower = model.user_embedding if user else model.item_embedding
    n = len(next(iter(tensors.values()))) if tensors else 0
    parts = [tower({k: t[s : s + 8192] for k, t in tensors.items()}) for s in range(0, n, 8192)]
    return torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros((0, model.cfg.embedding_dim), np.float32)


def _snapshot_matrix(
    keys: np.ndarray, key_col: np.ndarray, item_pos: np.ndarray, values: np.ndarray, n_cols: int
) -> sp.csr_matrix:
    """(len(keys), n_cols) sparse matrix from (key, column, value) triples whose key is in sorted `keys`."""
    rows = np.searchsorted(keys, key_col)
    ok = (rows < len(keys)) & (item_pos >= 0)
    ok[ok] &= keys[rows[ok]] == key_col[ok]
    return sp.csr_matrix((values[ok], (rows[ok], item_pos[ok])), shape=(len(keys), n_cols))


def ranker_rows(
    data: TrainingData,
    model: TwoTower,
    sizes: SourceSizes,
    two_tower: int,
    neighbours: int,
    popularity: int,
    uniform: int,
    depth: int,
    seed: int,
    ease: int = 0,
    ease_l2: float = 100.0,
) -> Columns:
    """Every example plus its drawn negatives, each with the source inputs at its own as_of.

    Returns columns user_id, item_id, as_of, label, watch_seconds, every contract feature, the
    SOURCE_FEATURES by name and `source` (SOURCE_CODES). Examples whose as_of has no item snapshot are
    dropped (none in a built warehouse: training_examples joins the same grid).
    """
    rng = np.random.default_rng(seed)
    ex = data.examples
    grid = data.item_grid
    grid_as_of = grid["as_of"]
    grid_items = grid["item_id"].astype(np.int64)
    user_names = ["user_id", *(f.name for f in data.user_features)]
    item_names = ["item_id", *(f.name for f in data.item_features)]
    item_emb = _embed(model, grid, data.item_features, user=False)  # (G, d) every grid row
    pop_score = np.nan_to_num(np.asarray(grid["item_popularity_30d_score"], dtype=np.float64))
    recent, neigh, events = data.recent_items, data.item_neighbours, data.positive_events

    parts: list[Columns] = []
    for as_of in np.unique(ex["as_of"]):
        lo, hi = np.searchsorted(grid_as_of, as_of, "left"), np.searchsorted(grid_as_of, as_of, "right")
        width = hi - lo
        rows = np.flatnonzero(ex["as_of"] == as_of)
        if width < 2 or not len(rows):
            continue
        slice_items = grid_items[lo:hi]  # sorted by item id (the grid is ordered by as_of, item_id)

        def pos(ids: np.ndarray, slice_items: np.ndarray = slice_items) -> np.ndarray:
            p = np.clip(np.searchsorted(slice_items, ids), 0, len(slice_items) - 1)
            return np.where(slice_items[p] == ids, p, -1)

        users = ex["user_id"][rows].astype(np.int64)
        keys, first, key_of_row = np.unique(users, return_index=True, return_inverse=True)
        user_emb = _embed(model, take_rows(ex, rows[first]), data.user_features, user=True)  # (K, d)
        tt = user_emb @ item_emb[lo:hi].T  # (K, width) two-tower scores
        r_mask = recent["as_of"] == as_of
        r = _snapshot_matrix(
            keys,
            recent["user_id"][r_mask].astype(np.int64),
            pos(recent["item_id"][r_mask].astype(np.int64)),
            np.ones(int(r_mask.sum())),
            width,
        )
        n_mask = neigh["as_of"] == as_of
        s = _snapshot_matrix(
            np.arange(width),
            pos(neigh["item_id"][n_mask].astype(np.int64)),
            pos(neigh["neighbour_item_id"][n_mask].astype(np.int64)),
            np.asarray(neigh["similarity_score"][n_mask], dtype=np.float64),
            width,
        )
        nb = np.asarray((r @ s).todense())  # (K, width) neighbour scores
        if sizes.ease > 0 and width <= MAX_EASE_ITEMS:
            # EASE fitted on every positive before this snapshot, scored from each key's positives before it
            before = events["event_ts"] < as_of
            e_users = events["user_id"][before].astype(np.int64)
            e_pos = pos(events["item_id"][before].astype(np.int64))
            ok = e_pos >= 0
            all_users, e_row = np.unique(e_users[ok], return_inverse=True)
            x_all = sp.csr_matrix((np.ones(len(e_row)), (e_row, e_pos[ok])), shape=(len(all_users), width))
            x_all.data[:] = 1.0  # repeated positives of a pair count once
            weights = fit_ease(x_all, ease_l2)
            x_keys = _snapshot_matrix(keys, e_users[ok], e_pos[ok], np.ones(int(ok.sum())), width)
            x_keys.data[:] = 1.0
            ez = np.asarray(x_keys @ weights, dtype=np.float64)  # (K, width)
            no_history = np.asarray(x_keys.sum(axis=1)).ravel() == 0
        else:
            ez = np.zeros_like(nb)
            no_history = np.ones(len(keys), dtype=bool)
        ez_rank = (
            _row_ranks(ez, sizes.ease, positive_only=False)
            if sizes.ease > 0 and ez.any()
            else np.full(ez.shape, float(sizes.ease + 1))
        )
        ez_rank[no_history] = sizes.ease + 1  # serving's constant for a user without positives (or no EASE)
        tt_rank = _row_ranks(tt, sizes.two_tower, positive_only=False)
        nb_rank = _row_ranks(nb, sizes.neighbours, positive_only=True)
        pop_rank = ranks_desc(pop_score[lo:hi], sizes.popularity)

        own = pos(ex["item_id"][rows].astype(np.int64))
        k = min(depth, width)
        positive = ex["label"][rows] == 1
        p_rows, p_keys, p_own = rows[positive], key_of_row[positive], own[positive]
        drawn = _Drawn(rng, p_own)
        add = drawn.add

        if len(p_rows):
            top_tt = np.argpartition(-tt, k - 1, axis=1)[:, :k]
            add(top_tt[p_keys], two_tower, "two_tower")
            top_nb = np.argpartition(-nb, k - 1, axis=1)[:, :k]
            has_nb = (np.take_along_axis(nb, top_nb, 1) > 0).sum(1) >= 2  # keys with a real neighbour list
            add(top_nb[p_keys[has_nb[p_keys]]], neighbours, "item_neighbours", np.flatnonzero(has_nb[p_keys]))
            add(
                np.broadcast_to(np.argsort(-pop_score[lo:hi], kind="stable")[:k], (len(p_rows), k)),
                popularity,
                "popularity",
            )
            add(np.broadcast_to(np.arange(width), (len(p_rows), width)), uniform, "uniform")
            if ez.any():
                add(np.argpartition(-ez, k - 1, axis=1)[:, :k][p_keys], ease, "ease")
        drawn_pos, drawn_from, drawn_src = drawn.positions, drawn.from_rows, drawn.sources
        neg_pos = np.concatenate(drawn_pos) if drawn_pos else np.zeros(0, np.int64)
        neg_from = np.concatenate(drawn_from) if drawn_from else np.zeros(0, np.int64)

        part: Columns = {}
        for name in user_names:
            part[name] = np.concatenate([ex[name][rows], ex[name][p_rows[neg_from]]])
        for name in item_names:
            part[name] = np.concatenate([ex[name][rows], grid[name][lo + neg_pos]])
        n_neg = len(neg_pos)
        part["as_of"] = np.concatenate([ex["as_of"][rows], np.repeat(np.asarray([as_of]), n_neg)])
        part["label"] = np.concatenate([ex["label"][rows], np.zeros(n_neg, np.int64)])
        part["watch_seconds"] = np.concatenate([ex["watch_seconds"][rows], np.zeros(n_neg)])
        part["source"] = (
            np.concatenate([np.zeros(len(rows), np.int64), *drawn_src]) if drawn_src else np.zeros(len(rows), np.int64)
        )
        all_keys = np.concatenate([key_of_row, p_keys[neg_from]])
        all_pos = np.concatenate([own, neg_pos])
        known = all_pos >= 0
        safe = np.maximum(all_pos, 0)
        part[TWO_TOWER_RANK.name] = np.where(known, tt_rank[all_keys, safe], sizes.two_tower + 1)
        part[NEIGHBOUR_SCORE.name] = np.where(known, nb[all_keys, safe], 0.0)
        part[NEIGHBOUR_RANK.name] = np.where(known, nb_rank[all_keys, safe], sizes.neighbours + 1)
        part[POPULARITY_RANK.name] = np.where(known, pop_rank[safe], sizes.popularity + 1)
        part[EASE_SCORE.name] = np.where(known, ez[all_keys, safe], 0.0)
        part[EASE_RANK.name] = np.where(known, ez_rank[all_keys, safe], sizes.ease + 1)
        parts.append(part)
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
