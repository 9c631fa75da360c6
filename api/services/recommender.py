"""The request path, in process: user features -> user tower -> FAISS top-N -> ranker -> fairness -> exploration.

No I/O happens here (no warehouse, no files): everything comes from a `ServingBundle` built at load
time, so `recommend` is a pure function of (bundle, user, k, exposure counters, random draw); the
API calls it on its event loop (docs/adr/0005-serving-concurrency.md). Holdout and cold-start users get
a popularity list instead.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from streamrec.api.config import ApiSettings
from streamrec.api.services.assignment import in_holdout
from streamrec.api.services.exploration import ExplorationPolicy, explore
from streamrec.api.services.fairness import (
    N_GROUPS,
    ExposureControl,
    ExposureTracker,
    group_urgency,
    parse_targets,
    plan_page,
)
from streamrec.api.services.serving_bundle import ServingBundle
from streamrec.api.services.serving_logs import LogScan
from streamrec.models_ml.sources import merged_candidates


@dataclass(frozen=True)
class Page:
    """What one request serves: item rows of the bundle with score and propensity per slot."""

    rows: np.ndarray  # (k,) index rows of the bundle
    scores: np.ndarray  # (k,) ranker logit, or popularity score
    propensities: np.ndarray  # (k,) probability of the item at its slot under the logging policy
    policy: str  # personalized | holdout | cold_start
    cold_start: bool


def restore_exposure(tracker: ExposureTracker, bundle: ServingBundle, scan: LogScan) -> None:
    """Refill the exposure counters of every version in the log, grouping items by `bundle`'s creator groups.

    Items the bundle does not know are skipped (they left the catalogue). Deficits are a function of the
    log alone, so a restarted process, or another worker reading the same segments, sees the same ones.
    """
    for version, (item_ids, exposure) in scan.exposure.items():
        rows = bundle.item_rows(item_ids)
        known = rows >= 0
        tracker.add(version, bundle.item_groups[rows[known]], exposure[known], bundle.item_creator_ids[rows[known]])


@dataclass(frozen=True)
class _CreatorMarks:
    """Per bundle: which items' creators were shown (and the negation, kept in step), and a creator-sorted index."""

    seen: np.ndarray  # (n_items,) bool, updated in place
    unseen: np.ndarray  # (n_items,) bool, ~seen
    order: np.ndarray  # item rows sorted by creator id
    sorted_creators: np.ndarray  # item_creator_ids[order]


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
        self.control = ExposureControl(
            cap_share=config.fairness_cap,
            target_ratios=parse_targets(config.fairness_targets),
            min_score=config.fairness_min_score,
            price=config.fairness_price,
            reach=config.fairness_reach,
        )
        # per item array of a bundle (shared by its snapshot compositions): creators this version has already shown
        self._creator_seen: dict[int, _CreatorMarks] = {}
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
        self,
        bundle: ServingBundle,
        user_batch: dict[str, torch.Tensor],
        rows: np.ndarray,
        retrieval: np.ndarray,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ranker logits for candidate rows, best first: (rows, logits); `inputs`: per-row source inputs by name."""
        with torch.inference_mode():
            # Item columns were encoded at load time, the user's are encoded once here; only the score varies per row.
            per_row = {"two_tower_score": torch.from_numpy(retrieval)}
            for name, values in (inputs or {}).items():
                per_row[name] = torch.from_numpy(np.asarray(values, dtype=np.float32))
            scored = bundle.ranker.score_rows(bundle.ranker_items, torch.from_numpy(rows), user_batch, per_row)
        logits = scored.numpy().astype(np.float64)
        order = np.argsort(-logits, kind="stable")
        return rows[order], logits[order]

    def score_candidates(self, bundle: ServingBundle, user_id: int, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Every source's candidates for the user and their ranker logits, best first: (rows, logits)."""
        user_batch, query = self.user_query(bundle, user_id, row)
        rows, retrieval = self.retrieve(bundle, query)
        return self.rank_merged(bundle, user_id, user_batch, query, rows, retrieval, len(rows))

    def rank_merged(
        self,
        bundle: ServingBundle,
        user_id: int,
        user_batch: dict[str, torch.Tensor],
        query: np.ndarray,
        rows: np.ndarray,
        retrieval: np.ndarray,
        n_index: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank `rows` (the index's first `n_index`, then any extra) merged with the bundle's other sources.

        A bundle without extra sources ranks `rows` as they are. With them, the item-to-item and popularity
        candidates join (deduplicated), and every candidate carries each source's score and rank.
        """
        if bundle.sources is None:
            return self.rank(bundle, user_batch, rows, retrieval)
        merged, inputs = merged_candidates(
            bundle.sources, user_id, query, rows[:n_index], bundle.popular_rows, extra_rows=[rows[n_index:]]
        )
        two_tower = inputs.pop("two_tower_score").astype(np.float32)
        return self.rank(bundle, user_batch, merged, two_tower, inputs)

    def reach_groups(
        self,
        bundle: ServingBundle,
        query: np.ndarray,
        rows: np.ndarray,
        retrieval: np.ndarray,
        targets: np.ndarray,
        n: int,
        prefer: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add to the candidates up to `n` best-matching items of each target group retrieval missed.

        Under-exposed groups are often absent from the top 500 because they are under-exposed: small,
        new, niche. Each group keeps a shortlist of its most popular items (`GROUP_SHORTLIST_SIZE`),
        scored against the query exactly (m x 128), so the reserved slots can always be filled.
        `prefer` (n_items bool, e.g. never-shown creators) puts those rows first, best match first.
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
            if prefer is not None:
                best = best[np.argsort(~prefer[shortlist[best]], kind="stable")]
            picked = best[~np.isin(shortlist[best], rows)][:missing]
            extra_rows.append(shortlist[picked])
            extra_scores.append(scores[picked].astype(retrieval.dtype))
        if len(extra_rows) == 1:
            return rows, retrieval
        return np.concatenate(extra_rows), np.concatenate(extra_scores)

    def candidates(self, bundle: ServingBundle, user_id: int, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Ranked candidates (rows, logits): retrieval plus the best matches of groups behind their exposure target."""
        user_batch, query = self.user_query(bundle, user_id, row)
        rows, retrieval = self.retrieve(bundle, query)
        n_index = len(rows)
        rows, retrieval = self.reach_lagging_groups(bundle, query, rows, retrieval)
        return self.rank_merged(bundle, user_id, user_batch, query, rows, retrieval, n_index)

    # --- exposure control (api/services/fairness.py); kept apart from retrieval so the two evolve separately ---

    def fairness_targets(self, bundle: ServingBundle) -> np.ndarray:
        """The creator groups below their exposure target for this version, furthest behind first (empty: none)."""
        if self.control.cap_share <= 0:
            return np.zeros(0, dtype=np.int64)
        urgency = group_urgency(self.tracker.exposure(bundle.version), bundle.group_sizes, self.control.target_ratios)
        order = np.lexsort((np.arange(N_GROUPS), -urgency))
        return order[urgency[order] > 0]

    def reach_lagging_groups(
        self, bundle: ServingBundle, query: np.ndarray, rows: np.ndarray, retrieval: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates plus up to `fairness_reach` shortlist items of each lagging group (the ranker then picks)."""
        targets = self.fairness_targets(bundle)
        if not len(targets) or self.control.reach <= 0:
            return rows, retrieval
        return self.reach_groups(
            bundle, query, rows, retrieval, targets, self.control.reach, prefer=self._creators(bundle).unseen
        )

    def creator_seen(self, bundle: ServingBundle) -> np.ndarray:
        """(n_items,) bool: the item's creator has been shown on a personalised page of this version."""
        return self._creators(bundle).seen

    def _creators(self, bundle: ServingBundle) -> _CreatorMarks:
        # Keyed by the item array, which bundles composed with another feature snapshot share
        # (api/services/snapshot_state.py): a snapshot swap does not redo this 1M-item pass on the event loop.
        key = id(bundle.item_creator_ids)
        marks = self._creator_seen.get(key)
        if marks is None:
            shown = np.fromiter(self.tracker.shown_creators(bundle.version), dtype=np.int64)
            seen = np.isin(bundle.item_creator_ids, shown)
            order = np.argsort(bundle.item_creator_ids, kind="stable")
            fresh = _CreatorMarks(seen, ~seen, order, bundle.item_creator_ids[order])
            with self._lock:
                if key not in self._creator_seen:
                    self._creator_seen[key] = fresh
                    weakref.finalize(bundle.item_creator_ids, self._creator_seen.pop, key, None)  # reloads free it
                marks = self._creator_seen[key]
        return marks

    def rerank(
        self, bundle: ServingBundle, ranked_rows: np.ndarray, ranked_scores: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The page (positions into the ranked list) and its reserved mask, from this version's exposure deficits."""
        exposure = self.tracker.exposure(bundle.version)
        unseen = self._creators(bundle).unseen[ranked_rows]
        return plan_page(
            exposure, bundle.group_sizes, bundle.item_groups[ranked_rows], ranked_scores, k, self.control, unseen
        )

    def record_served(self, bundle: ServingBundle, page: Page) -> None:
        """Count a logged page as exposure: personalised pages only, position-weighted, as the equity metric does."""
        if page.policy != "personalized" or not len(page.rows):
            return
        marks = self._creators(bundle)
        new = self.tracker.record(
            bundle.version,
            bundle.item_groups[page.rows],
            np.arange(1, len(page.rows) + 1),
            bundle.item_creator_ids[page.rows],
        )
        if new:
            # The rows of the new creators through the creator-sorted index: a few binary searches, not a
            # pass over every item (np.isin over 1M items was ~4-7 ms, most of a request's server CPU).
            new_ids = np.asarray(new, dtype=np.int64)
            starts = np.searchsorted(marks.sorted_creators, new_ids, side="left")
            stops = np.searchsorted(marks.sorted_creators, new_ids, side="right")
            rows = np.concatenate([marks.order[a:b] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)])
            marks.seen[rows] = True
            marks.unseen[rows] = False

    def personalized(self, bundle: ServingBundle, user_id: int, row: int, k: int) -> Page:
        """Retrieval + ranking + exposure control + exploration."""
        ranked_rows, ranked_scores = self.candidates(bundle, user_id, row)
        return self.page(bundle, ranked_rows, ranked_scores, k)

    def page(self, bundle: ServingBundle, ranked_rows: np.ndarray, ranked_scores: np.ndarray, k: int) -> Page:
        """The served page from ranked candidates: exposure control, then exploration with propensities."""
        k = min(k, len(ranked_rows))
        page, reserved = self.rerank(bundle, ranked_rows, ranked_scores, k)
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
