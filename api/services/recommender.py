"""The request path, in process: user features -> user tower -> FAISS top-N -> ranker -> fairness -> exploration.

No I/O happens here (no warehouse, no files): everything comes from a `ServingBundle` built at load
time, so `recommend` is a pure function of (bundle, user, k, exposure counters, random draw) that
runs in a worker thread. Holdout and cold-start users get a popularity list instead.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import torch

from api.config import ApiSettings
from api.services.assignment import in_holdout
from api.services.bundle_state import ServingBundle
from api.services.exploration import ExplorationPolicy, explore
from api.services.fairness import ExposureTracker, min_exposure_rerank, reserved_slot_count


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

    def _rng(self) -> np.random.Generator:
        # numpy Generators are not thread-safe: one per request, reproducible when a seed is configured.
        if self._seed is None:
            return np.random.default_rng()
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

    def score_candidates(self, bundle: ServingBundle, user_id: int, row: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS candidates for the user and their ranker logits, best first: (rows, logits)."""
        with torch.inference_mode():
            user_batch = {name: values[row : row + 1] for name, values in bundle.user_features.items()}
            user_batch["user_id"] = torch.tensor([user_id], dtype=torch.int64)
            query = bundle.two_tower.user_embedding(user_batch).numpy()  # (1, 128)
            retrieval_scores, found = bundle.index.search(query, min(self.config.retrieval_k, bundle.n_items))
            keep = found[0] >= 0
            rows = found[0][keep]
            n = len(rows)
            rows_t = torch.from_numpy(rows)
            batch = {name: values.index_select(0, rows_t) for name, values in bundle.item_features.items()}
            for name, values in user_batch.items():
                batch[name] = values.expand(n)
            batch["two_tower_score"] = torch.from_numpy(retrieval_scores[0][keep])
            logits = bundle.ranker(batch).numpy().astype(np.float64)  # (n,)
        order = np.argsort(-logits, kind="stable")
        return rows[order], logits[order]

    def personalized(self, bundle: ServingBundle, user_id: int, row: int, k: int) -> Page:
        """Retrieval + ranking + minimum-exposure re-rank + exploration."""
        ranked_rows, ranked_scores = self.score_candidates(bundle, user_id, row)
        k = min(k, len(ranked_rows))
        ranked_groups = bundle.item_groups[ranked_rows]
        n_reserved = reserved_slot_count(k, self.config.fairness_share)
        targets = self.tracker.under_exposed(bundle.group_sizes, ranked_groups, self.config.fairness_groups)
        page, reserved = min_exposure_rerank(ranked_groups, k, n_reserved, targets)
        extra = np.setdiff1d(np.arange(len(ranked_rows)), page, assume_unique=True)  # sorted = rank order
        served, propensity = explore(page, reserved, extra, ranked_scores, self.exploration, self._rng())
        return Page(
            rows=ranked_rows[served],
            scores=ranked_scores[served],
            propensities=propensity,
            policy="personalized",
            cold_start=False,
        )
