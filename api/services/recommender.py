"""The request path, in process: user features -> user tower -> FAISS top-N -> ranker -> fairness -> exploration.

No I/O happens here (no warehouse, no files): everything comes from a `ServingBundle` built at load
time, so `recommend` is a pure function of (bundle, user, k, exposure counters, random draw); the
API calls it on its event loop (docs/adr/0005-serving-concurrency.md). Holdout and cold-start users get
a popularity list instead.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import torch

from streamrec.api.config import ApiSettings
from streamrec.api.services.assignment import in_holdout
from streamrec.api.services.exploration import ExplorationPolicy, explore
from streamrec.api.services.fairness import N_GROUPS, ExposureTracker, min_exposure_rerank, reserved_slot_count
from streamrec.api.services.serving_bundle import ServingBundle


@dataclass(frozen=True)
class Page:
    """What one request serves: item rows of the bundle with score and propensity per slot."""

    rows: np.ndarray  # (k,) index rows of the bundle
    scores: np.ndarray  # (k,) ranker logit, or popularity score
    propensities: np.ndarray  # (k,) probability of the item at its slot under the logging policy
    policy: str  # personalized | holdout | cold_start
    cold_start: bool


class Recommender:
    """Policies and their knobs; `recommend` is thread-safe and does no I/O."""

    def __init__(self, config: ApiSettings, tracker: ExposureTracker) -> None:
        self.config = config
        self.tracker = tracker
        self.exploration = ExplorationPolicy(
            kind=config.exploration,
            epsilon=config.epsilon,
            temperature=config.temperature,
            samples=config.pl_samples,
            pool=config.explore_pool,
        )
        self._seed = config.seed
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._local = threading.local()

    def _rng(self) -> np.random.Generator:
        # numpy Generators are not thread-safe. Seeded: one per request, reproducible by request number.
        # Unseeded: one per thread, seeded from OS entropy once (fresh entropy per request costs a syscall).
        if self._seed is None:
            generator = getattr(self._local, "generator", None)
            if generator is None:
                generator = self._local.generator = np.random.default_rng()
            return generator
        with self._lock:
            return np.random.default_rng([self._seed, next(self._counter)])

    def recommend(self, bundle: ServingBundle, user_id: int, k: int, language: str | None = None) -> Page:
        """The page for one user from one bundle (the caller picked the bundle: canary routing)."""
        row = bundle.user_row(user_id)
        if row is None:
            return self.popular(bundle, k, language, policy="cold_start")
        if in_holdout(user_id, self.config.holdout_share, self.config.holdout_salt):
            return self.popular(bundle, k, None, policy="holdout")
        return self.personalized(bundle, user_id, row, k)

    def popular(self, bundle: ServingBundle, k: int, language: str | None, policy: str) -> Page:
        """Top-k by item popularity, of the creator language if given (topped up from global); deterministic."""
        rows = bundle.popular_rows[:k]
        if language is not None:
            preferred = bundle.popular_rows_by_language.get(language, bundle.popular_rows[:0])[:k]
            if len(preferred) < k:
                rest = bundle.popular_rows[~np.isin(bundle.popular_rows, preferred)][: k - len(preferred)]
                preferred = np.concatenate([preferred, rest])
            rows = preferred
        return Page(
            rows=rows,
            scores=bundle.popularity[rows],
            propensities=np.ones(len(rows)),
            policy=policy,
            cold_start=policy == "cold_start",
        )

    def user_query(self, bundle: ServingBundle, user_id: int, row: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """The user's feature row (name -> (1,) tensors, plus user_id) and user-tower embedding (1, 128)."""
        with torch.inference_mode():
            user_batch = {name: values[row : row + 1] for name, values in bundle.user_features.items()}
            user_batch["user_id"] = torch.tensor([user_id], dtype=torch.int64)
            return user_batch, bundle.two_tower.user_embedding(user_batch).numpy()

    def retrieve(self, bundle: ServingBundle, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FAISS top-`retrieval_k` for one query: (index rows, two-tower scores), best first."""
        scores, found = bundle.index.search(query, min(self.config.retrieval_k, bundle.n_items))
        keep = found[0] >= 0  # an IVF index can return fewer than asked
        return found[0][keep], scores[0][keep]

    def rank(
        self, bundle: ServingBundle, user_batch: dict[str, torch.Tensor], rows: np.ndarray, retrieval: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ranker logits for candidate rows, best first: (rows, logits)."""
        with torch.inference_mode():
            # Item columns were encoded at load time, the user's are encoded once here; only the score varies per row.
            per_row = {"two_tower_score": torch.from_numpy(retrieval)}
            scored = bundle.ranker.score_rows(bundle.ranker_items, torch.from_numpy(rows), user_batch, per_row)
        logits = scored.numpy().astype(np.float64)
        order = np.argsort(-logits, kind="stable")
        return rows[order], logits[order]

    def score_candidates(self, bundle: ServingBundle, user_id: int, row: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS candidates for the user and their ranker logits, best first: (rows, logits)."""
        user_batch, query = self.user_query(bundle, user_id, row)
        rows, retrieval = self.retrieve(bundle, query)
        return self.rank(bundle, user_batch, rows, retrieval)

    def reach_groups(
        self,
        bundle: ServingBundle,
        query: np.ndarray,
        rows: np.ndarray,
        retrieval: np.ndarray,
        targets: np.ndarray,
        n: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add to the candidates up to `n` best-matching items of each target group retrieval missed.

        Under-exposed groups are often absent from the top 500 because they are under-exposed: small,
        new, niche. Each group keeps a shortlist of its most popular items (`GROUP_SHORTLIST_SIZE`),
        scored against the query exactly (m x 128), so the reserved slots can always be filled.
        """
        found = np.bincount(bundle.item_groups[rows], minlength=N_GROUPS)
        extra_rows, extra_scores = [rows], [retrieval]
        for group in targets.tolist():
            missing = n - int(found[group])
            if missing <= 0 or group not in bundle.group_shortlists:
                continue
            shortlist, embeddings = bundle.group_shortlists[group]
            scores = embeddings @ query[0]
            best = np.argsort(-scores, kind="stable")
            picked = best[~np.isin(shortlist[best], rows)][:missing]
            extra_rows.append(shortlist[picked])
            extra_scores.append(scores[picked].astype(retrieval.dtype))
        if len(extra_rows) == 1:
            return rows, retrieval
        return np.concatenate(extra_rows), np.concatenate(extra_scores)

    def candidates(
        self, bundle: ServingBundle, user_id: int, row: int, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Ranked candidates (rows, logits), the under-exposed target groups and the reserved slot count."""
        user_batch, query = self.user_query(bundle, user_id, row)
        rows, retrieval = self.retrieve(bundle, query)
        targets, n_reserved = self.fairness_targets(bundle, min(k, len(rows)))
        if n_reserved:
            rows, retrieval = self.reach_groups(bundle, query, rows, retrieval, targets, n_reserved)
        ranked_rows, ranked_scores = self.rank(bundle, user_batch, rows, retrieval)
        return ranked_rows, ranked_scores, targets, n_reserved

    def fairness_targets(self, bundle: ServingBundle, page_size: int) -> tuple[np.ndarray, int]:
        """The under-exposed groups, least exposed first, and how many slots of the page are reserved for them."""
        n_reserved = reserved_slot_count(page_size, self.config.fairness_share)
        if not n_reserved:
            return np.zeros(0, dtype=np.int64), 0
        # The least-exposed groups of the whole catalogue, not only of this user's candidates.
        catalogue_groups = np.flatnonzero(bundle.group_sizes)
        return self.tracker.under_exposed(bundle.group_sizes, catalogue_groups, self.config.fairness_groups), n_reserved

    def personalized(self, bundle: ServingBundle, user_id: int, row: int, k: int) -> Page:
        """Retrieval + ranking + minimum-exposure re-rank + exploration."""
        ranked_rows, ranked_scores, targets, n_reserved = self.candidates(bundle, user_id, row, k)
        return self.page(bundle, ranked_rows, ranked_scores, targets, n_reserved, k)

    def page(
        self,
        bundle: ServingBundle,
        ranked_rows: np.ndarray,
        ranked_scores: np.ndarray,
        targets: np.ndarray,
        n_reserved: int,
        k: int,
    ) -> Page:
        """The served page from ranked candidates: minimum-exposure re-rank, then exploration with propensities."""
        k = min(k, len(ranked_rows))
        ranked_groups = bundle.item_groups[ranked_rows]
        page, reserved = min_exposure_rerank(ranked_groups, k, n_reserved, targets)
        off_page = np.ones(len(ranked_rows), dtype=bool)
        off_page[page] = False
        extra = np.flatnonzero(off_page)  # candidates not on the page, in rank order
        served, propensity = explore(page, reserved, extra, ranked_scores, self.exploration, self._rng())
        return Page(
            rows=ranked_rows[served],
            scores=ranked_scores[served],
            propensities=propensity,
            policy="personalized",
            cold_start=False,
        )
