"""Candidate sources beside the two-tower, and the per-source ranker inputs they produce.

The ranker orders a merged candidate list: the two-tower's FAISS top-N, the item-to-item neighbours of
the user's recent items (the warehouse's `features.item_neighbours` over `features.user_recent_items`)
and the most popular items. Every candidate gets each source's score and rank as named ranker inputs
(SOURCE_FEATURES), whether that source proposed it or not, so the ranker learns how much to trust each:
a rank past a source's list is `k + 1` ("not in this source's list").

Training computes the same inputs for each training row from the sources as they were at the row's own
as_of (`models_ml.negatives`); serving computes them from the bundle's copy at the serving as_of. This
module does no I/O and imports no warehouse code, so the API uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamrec.contracts.schema import Feature

# Bundle files of the item-to-item source (the serving as_of's rows of the two dbt models).
NEIGHBOURS_FILE = "sources/item_neighbours.parquet"
RECENT_ITEMS_FILE = "sources/user_recent_items.parquet"
# Bundle files of the EASE source: its item x item weights (catalogue row order) and each user's positives.
EASE_WEIGHTS_FILE = "sources/ease_weights.npy"
USER_HISTORY_FILE = "sources/user_history.parquet"


def _derived(name: str, unit: str, description: str, low: float | None, high: float | None) -> Feature:
    return Feature(
        name=name,
        entity="model",
        dtype="float64",
        unit=unit,
        nullable=False,
        description=description,
        min=low,
        max=high,
    )


TWO_TOWER_RANK = _derived(
    "two_tower_rank", "rank", "Position in the two-tower's retrieval list (k + 1 past it).", 1.0, None
)
NEIGHBOUR_SCORE = _derived(
    "neighbour_score",
    "score",
    "Sum of item-to-item similarities between the candidate and the user's recent items.",
    0.0,
    None,
)
NEIGHBOUR_RANK = _derived(
    "neighbour_rank", "rank", "Position in the item-to-item source's list (k + 1 past it).", 1.0, None
)
POPULARITY_RANK = _derived(
    "popularity_rank", "rank", "Position in the popularity list at the snapshot (k + 1 past it).", 1.0, None
)
EASE_SCORE = _derived(
    "ease_score", "score", "EASE (Steck 2019) score of the candidate from the user's positives.", None, None
)
EASE_RANK = _derived("ease_rank", "rank", "Position in the EASE source's list (k + 1 past it).", 1.0, None)
SOURCE_FEATURES = (TWO_TOWER_RANK, NEIGHBOUR_SCORE, NEIGHBOUR_RANK, POPULARITY_RANK, EASE_SCORE, EASE_RANK)


@dataclass(frozen=True)
class SourceSizes:
    """How many candidates each source proposes (and where its rank input saturates)."""

    two_tower: int = 500  # FAISS top-N (the API's retrieval_k serves it)
    neighbours: int = 100  # item-to-item candidates
    popularity: int = 50  # most popular items
    ease: int = 100  # EASE candidates (0: no EASE source, e.g. a catalogue above MAX_EASE_ITEMS)

    def as_dict(self) -> dict[str, int]:
        """Name -> size, as the manifest records them."""
        return {
            "two_tower": self.two_tower,
            "item_neighbours": self.neighbours,
            "popularity": self.popularity,
            "ease": self.ease,
        }


def ranks_desc(scores: np.ndarray, cap: int) -> np.ndarray:
    """1-based rank of every entry of `scores` (1 = highest; ties by position), min(rank, cap + 1).

    Entries with a score <= 0 are not in the source's list and rank `cap + 1`.
    """
    order = np.lexsort((np.arange(len(scores)), -scores))
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return np.where(scores > 0, np.minimum(ranks, cap + 1), cap + 1)


@dataclass(frozen=True)
class NeighbourTable:
    """Item-to-item neighbours over catalogue rows: CSR (indptr by item row, neighbour rows, similarities)."""

    indptr: np.ndarray  # (n_items + 1,) int64
    neighbours: np.ndarray  # (nnz,) int64 catalogue rows
    similarity: np.ndarray  # (nnz,) float64

    @classmethod
    def from_rows(
        cls, item_rows: np.ndarray, neighbour_rows: np.ndarray, similarity: np.ndarray, n_items: int
    ) -> NeighbourTable:
        """Build from (item row, neighbour row, similarity) triples; rows outside the catalogue (-1) dropped."""
        keep = (item_rows >= 0) & (neighbour_rows >= 0)
        item_rows, neighbour_rows, similarity = item_rows[keep], neighbour_rows[keep], similarity[keep]
        order = np.lexsort((neighbour_rows, item_rows))
        counts = np.bincount(item_rows, minlength=n_items)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, neighbour_rows[order].astype(np.int64), similarity[order].astype(np.float64))

    def scores(self, recent_rows: np.ndarray, n_items: int) -> np.ndarray:
        """(n_items,) sum of similarities from each of `recent_rows` to every item (0 where none)."""
        out = np.zeros(n_items, dtype=np.float64)
        if len(recent_rows):
            starts, stops = self.indptr[recent_rows], self.indptr[recent_rows + 1]
            if (stops > starts).any():
                index = np.concatenate([np.arange(a, b) for a, b in zip(starts.tolist(), stops.tolist(), strict=True)])
                np.add.at(out, self.neighbours[index], self.similarity[index])
        return out


@dataclass(frozen=True)
class RecentItems:
    """Each user's recent items as catalogue rows: CSR over users sorted by id."""

    user_ids: np.ndarray  # (n_users,) int64 sorted
    indptr: np.ndarray  # (n_users + 1,) int64
    item_rows: np.ndarray  # (nnz,) int64

    @classmethod
    def from_rows(cls, user_ids: np.ndarray, item_rows: np.ndarray) -> RecentItems:
        """Build from (user id, item row) pairs; items outside the catalogue (-1) dropped."""
        keep = item_rows >= 0
        user_ids, item_rows = np.asarray(user_ids, dtype=np.int64)[keep], item_rows[keep]
        order = np.lexsort((item_rows, user_ids))
        users, counts = np.unique(user_ids[order], return_counts=True)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(users, indptr, item_rows[order].astype(np.int64))

    def of(self, user_id: int) -> np.ndarray:
        """Catalogue rows of the user's recent items (empty for a user without any)."""
        pos = int(np.searchsorted(self.user_ids, user_id))
        if pos < len(self.user_ids) and self.user_ids[pos] == user_id:
            return self.item_rows[self.indptr[pos] : self.indptr[pos + 1]]
        return self.item_rows[:0]


@dataclass(frozen=True)
class CandidateSources:
    """What serving needs of the extra sources: neighbours, recent items, popularity ranks and their sizes."""

    sizes: SourceSizes
    neighbours: NeighbourTable
    recent: RecentItems
    popularity_rank: np.ndarray  # (n_items,) float64 1-based popularity rank, capped at sizes.popularity + 1
    item_embeddings: np.ndarray  # (n_items, d) float32: two-tower scores of candidates the index did not return
    ease_weights: np.ndarray | None = None  # (n_items, n_items) float32 EASE B, catalogue row order
    history: RecentItems | None = None  # each user's positives (EASE's input), catalogue rows

    def ease_scores(self, user_id: int) -> np.ndarray:
        """(n_items,) EASE scores of the user (zeros without an EASE source or history)."""
        n = len(self.popularity_rank)
        if self.ease_weights is None or self.history is None:
            return np.zeros(n, dtype=np.float64)
        rows = self.history.of(user_id)
        return self.ease_weights[rows].sum(0, dtype=np.float64) if len(rows) else np.zeros(n, dtype=np.float64)


def merge_candidates(lists: Sequence[np.ndarray]) -> np.ndarray:
    """The union of candidate row lists, each row once, in first-seen order (the first list's order first)."""
    rows = np.concatenate([np.asarray(rows, dtype=np.int64) for rows in lists]) if lists else np.zeros(0, np.int64)
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


def source_inputs(
    sources: CandidateSources,
    rows: np.ndarray,
    two_tower_rows: np.ndarray,
    neighbour_scores: np.ndarray,
    ease_scores: np.ndarray,
) -> Mapping[str, np.ndarray]:
    """Per candidate row: each source's rank input and the neighbour / EASE scores (SOURCE_FEATURES by name)."""
    nb_listed = np.flatnonzero(neighbour_scores > 0)
    nb_listed = nb_listed[np.lexsort((nb_listed, -neighbour_scores[nb_listed]))]
    return {
        TWO_TOWER_RANK.name: list_ranks(rows, two_tower_rows, sources.sizes.two_tower),
        NEIGHBOUR_SCORE.name: neighbour_scores[rows],
        NEIGHBOUR_RANK.name: list_ranks(rows, nb_listed, sources.sizes.neighbours),
        POPULARITY_RANK.name: sources.popularity_rank[rows],
        EASE_SCORE.name: ease_scores[rows] if len(ease_scores) else np.zeros(len(rows)),
        EASE_RANK.name: (
            ranks_all(ease_scores, sources.sizes.ease)[rows]
            if len(ease_scores)
            else np.full(len(rows), float(sources.sizes.ease + 1))
        ),
    }


def list_ranks(rows: np.ndarray, listed: np.ndarray, cap: int) -> np.ndarray:
    """1-based position of each of `rows` in the ranked list `listed` (best first), cap + 1 past `cap` or absent.

    Costs O(cap log cap + len(rows)), never the catalogue's size: what a request can afford at 1M items.
    """
    top = np.asarray(listed, dtype=np.int64)[:cap]
    out = np.full(len(rows), float(cap + 1))
    if len(top) and len(rows):
        order = np.argsort(top, kind="stable")
        pos = np.clip(np.searchsorted(top[order], rows), 0, len(top) - 1)
        hit = top[order][pos] == rows
        out[hit] = order[pos[hit]] + 1.0
    return out


def ranks_all(scores: np.ndarray, cap: int) -> np.ndarray:
    """1-based rank of every entry (1 = highest; ties by position), min(rank, cap + 1); cap 0: all cap + 1."""
    if cap <= 0 or not np.any(scores):
        return np.full(len(scores), float(cap + 1))
    order = np.lexsort((np.arange(len(scores)), -scores))
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return np.minimum(ranks, cap + 1)


def catalogue_rows(item_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each `wanted` id in the catalogue `item_ids` (any order), -1 where absent."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    wanted = np.asarray(wanted, dtype=np.int64)
    if not len(item_ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    sorter = np.argsort(item_ids, kind="stable")
    p = np.clip(np.searchsorted(item_ids[sorter], wanted), 0, len(item_ids) - 1)
    return np.where(item_ids[sorter][p] == wanted, sorter[p], -1)


def build_sources(
    item_ids: np.ndarray,
    neighbours: Mapping[str, np.ndarray],
    recent: Mapping[str, np.ndarray],
    popularity: np.ndarray,
    item_embeddings: np.ndarray,
    sizes: SourceSizes,
    ease_weights: np.ndarray | None = None,
    history: Mapping[str, np.ndarray] | None = None,
) -> CandidateSources:
    """CandidateSources over a catalogue (`item_ids`, row order) from one snapshot's neighbour and recent rows.

    `neighbours`: item_id, neighbour_item_id, similarity_score; `recent`: user_id, item_id; `popularity`:
    (n_items,) the popularity score in catalogue row order (ties ranked by item id, as the popularity page).
    """
    n = len(item_ids)
    table = NeighbourTable.from_rows(
        catalogue_rows(item_ids, neighbours["item_id"]),
        catalogue_rows(item_ids, neighbours["neighbour_item_id"]),
        np.asarray(neighbours["similarity_score"], dtype=np.float64),
        n,
    )
    recent_items = RecentItems.from_rows(np.asarray(recent["user_id"]), catalogue_rows(item_ids, recent["item_id"]))
    popularity = np.nan_to_num(np.asarray(popularity, dtype=np.float64))
    order = np.lexsort((np.asarray(item_ids), -popularity))
    rank = np.empty(n, dtype=np.float64)
    rank[order] = np.arange(1, n + 1)
    rank = np.where(popularity > 0, np.minimum(rank, sizes.popularity + 1), sizes.popularity + 1)
    return CandidateSources(
        sizes=sizes,
        neighbours=table,
        recent=recent_items,
        popularity_rank=rank,
        item_embeddings=np.ascontiguousarray(item_embeddings, dtype=np.float32),
        ease_weights=ease_weights,
        history=(
            RecentItems.from_rows(np.asarray(history["user_id"]), catalogue_rows(item_ids, history["item_id"]))
            if history is not None
            else None
        ),
    )


def merged_candidates(
    sources: CandidateSources,
    user_id: int,
    query: np.ndarray,
    two_tower_rows: np.ndarray,
    popular_rows: np.ndarray,
    extra_rows: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The merged, deduplicated candidates of one user and every ranker input they need (by name).

    `query`: (1, d) user embedding; `two_tower_rows`: the FAISS list, best first; `popular_rows`: catalogue
    rows by popularity, best first; `extra_rows`: other lists to merge (e.g. the fairness shortlist). The
    two-tower score of a candidate the index did not return is computed exactly from its embedding.
    """
    n_items = len(sources.popularity_rank)
    nb_scores = sources.neighbours.scores(sources.recent.of(user_id), n_items)
    nb_rows = np.flatnonzero(nb_scores > 0)
    nb_rows = nb_rows[np.lexsort((nb_rows, -nb_scores[nb_rows]))][: sources.sizes.neighbours]
    ease = sources.ease_scores(user_id)
    ease_rows = (
        np.lexsort((np.arange(n_items), -ease))[: sources.sizes.ease] if np.any(ease) else ease[:0].astype(np.int64)
    )
    rows = merge_candidates(
        [two_tower_rows, nb_rows, ease_rows, np.asarray(popular_rows)[: sources.sizes.popularity], *extra_rows]
    )
    inputs = dict(source_inputs(sources, rows, two_tower_rows, nb_scores, ease))
    inputs["two_tower_score"] = sources.item_embeddings[rows] @ np.asarray(query, dtype=np.float32)[0]
    return rows, inputs
