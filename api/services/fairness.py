"""Amortized exposure control: reserve slots for the creator groups furthest below their exposure target.

A creator group is (creator language, new-creator flag), from the item features
`item_creator_language_code` and `item_creator_is_new_flag`: 9 languages x 2 = 18 groups, numbered
`language_index * 2 + flag` in contract code order, so the numbering does not depend on a bundle.
The audited dimensions are the ones `evaluation.online_creator_exposure` judges: creator language
(9 groups), new vs established (2) and their intersection (18); each is a sum of the 18 groups.

Exposure is position-weighted, 1 / log2(1 + position), counted over personalised slots per model
version, exactly what the equity metric measures (docs/evaluation.md, "Creator exposure equity").
It is restored from the impression log at startup (so deficits survive a restart, and any process
that reads the same segments computes the same deficits) and updated in memory after each logged page.

Target (Biega et al. 2018, amortized equity of attention; Singh & Joachims 2018, fairness of
exposure): on dimension d the group h is on target when its normalised share (exposure share /
catalogue share) is at least ratio_d times the largest normalised share of that dimension, i.e.
its target exposure is ratio_d * catalogue_share_h * (the most exposed group's exposure per
catalogue share). With ratio_d = the equity threshold this is exactly "equity_d >= threshold".
The deficit is target minus exposure (never negative); relative deficit = deficit / target.

Per page (`plan_page`), the page's own organic exposure is counted first; then, up to `cap` times,
the group with the largest relative deficit (over any dimension it belongs to) that has a candidate
below the page with ranker score >= `min_score` gets a reserved slot: its best-scored candidate
replaces the lowest-ranked unreserved item of a less urgent group, and the expected exposure moves
between the two groups before the next slot is decided. So no slot is reserved while every group is
on target, more as groups fall behind, never more than the cap. Reserved items are deterministic given
the counters: exploration never moves them and they are logged with propensity 1 (exact).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from streamrec.contracts.groups import CREATOR_LANGUAGES, N_CREATOR_GROUPS
from streamrec.core.errors import StreamRecError

LANGUAGES = CREATOR_LANGUAGES
N_GROUPS = N_CREATOR_GROUPS
# dimension -> the dimension's group of each of the 18 intersection groups (the names the SQL metric uses)
DIMENSION_GROUPS: Mapping[str, np.ndarray] = {
    "creator_language": np.arange(N_GROUPS) // 2,
    "creator_is_new": np.arange(N_GROUPS) % 2,
    "creator_language_x_is_new": np.arange(N_GROUPS),
}
# Every audited group of every dimension laid end to end (9 + 2 + 18 rows), so group_backlog, which plan_page
# asks up to 7 times per request, computes all dimensions with a few whole-array operations.
_SIZES = {dimension: int(members.max()) + 1 for dimension, members in DIMENSION_GROUPS.items()}
_DIMENSION_ROWS = {
    dimension: slice(start, start + _SIZES[dimension])
    for dimension, start in zip(DIMENSION_GROUPS, np.cumsum([0, *_SIZES.values()])[:-1].tolist(), strict=True)
}
# each intersection group's row in each dimension: its urgency is the largest relative deficit of these rows
_GROUP_ROWS = np.stack([rows.start + DIMENSION_GROUPS[d] for d, rows in _DIMENSION_ROWS.items()])
DEFAULT_TARGET_RATIO = 0.7  # the equity threshold 0.6 plus a margin (StreamRecSettings.fairness_targets, ADR 0006)
PAGE_EXPOSURE = float((1.0 / np.log2(np.arange(2, 12))).sum())  # a page of 10: the backlog's unit


def parse_targets(raw: str, name: str = "STREAMREC_FAIRNESS_TARGETS") -> dict[str, float]:
    """Target ratios per dimension from `0.7` (every dimension) or `dimension=ratio,...` (others: the default)."""
    targets = dict.fromkeys(DIMENSION_GROUPS, DEFAULT_TARGET_RATIO)
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    try:
        if len(parts) == 1 and "=" not in parts[0]:
            targets = dict.fromkeys(DIMENSION_GROUPS, float(parts[0]))
        else:
            for part in parts:
                dimension, _, value = (x.strip() for x in part.partition("="))
                if dimension not in targets:
                    raise StreamRecError(f"{name}: unknown dimension {dimension!r} (one of {list(DIMENSION_GROUPS)})")
                targets[dimension] = float(value)
    except ValueError:
        raise StreamRecError(f"{name}={raw!r} is not a ratio or a dimension=ratio list") from None
    if not all(0.0 <= v <= 1.0 for v in targets.values()):
        raise StreamRecError(f"{name}={raw!r}: every ratio must be in [0, 1]")
    return targets


def group_of(language_index: np.ndarray, is_new: np.ndarray) -> np.ndarray:
    """Group id per item from the language code index and the new-creator flag (0/1)."""
    return (np.asarray(language_index, dtype=np.int16) * 2 + np.asarray(is_new, dtype=np.int16)).astype(np.int16)


def group_name(group: int) -> str:
    """`en/new`, `ja/established`: the readable name of a group id."""
    return f"{LANGUAGES[group // 2]}/{'new' if group % 2 else 'established'}"


def position_weights(k: int) -> np.ndarray:
    """Exposure of positions 1..k: 1 / log2(1 + position), the metric's weight."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def cap_slots(k: int, cap_share: float) -> int:
    """The most slots of a page of k the controller may reserve: floor(cap_share·k)."""
    return min(k, max(0, math.floor(cap_share * k + 1e-9)))


@dataclass(frozen=True)
class ExposureControl:
    """The controller's knobs (docs/api.md, "Fairness: amortized exposure control")."""

    cap_share: float = 0.7  # at most this share of a page's slots is reserved
    target_ratios: Mapping[str, float] = field(
        default_factory=lambda: dict.fromkeys(DIMENSION_GROUPS, DEFAULT_TARGET_RATIO)
    )
    min_score: float = -math.inf  # a candidate with a lower ranker logit is never promoted
    # ranker logits a promotion may cost per page-exposure of deficit backlog (amortization: promote where cheap)
    price: float = math.inf
    reach: int = 20  # items per lagging group scored from its shortlist when retrieval missed the group


def dimension_deficits(
    exposure: np.ndarray, catalogue_sizes: np.ndarray, ratios: Mapping[str, float]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per dimension: (target exposure, deficit) of each of its groups, from exposure per intersection group.

    Groups without catalogue items have target 0. With no exposure at all every target is 0.
    """
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dimension, members in DIMENSION_GROUPS.items():
        size = int(members.max()) + 1
        exposed = np.bincount(members, weights=exposure, minlength=size)
        catalogue = np.bincount(members, weights=catalogue_sizes.astype(np.float64), minlength=size)
        share = catalogue / max(catalogue.sum(), 1.0)
        present = share > 0
        per_share = np.zeros(size)
        per_share[present] = exposed[present] / share[present]
        target = ratios.get(dimension, DEFAULT_TARGET_RATIO) * share * (per_share.max() if present.any() else 0.0)
        result[dimension] = (target, np.maximum(target - exposed, 0.0))
    return result


def group_urgency(exposure: np.ndarray, catalogue_sizes: np.ndarray, ratios: Mapping[str, float]) -> np.ndarray:
    """Per intersection group: the largest relative deficit of any group it belongs to; -1 if not in the catalogue."""
    return group_backlog(exposure, catalogue_sizes, ratios)[0]


def group_backlog(
    exposure: np.ndarray, catalogue_sizes: np.ndarray, ratios: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per intersection group: (largest relative deficit, largest absolute deficit) of any group it belongs to.

    Groups outside the catalogue get -1 for both. The absolute deficit (exposure units) is the
    amortized backlog: it keeps growing while a group is passed over, so its price eventually pays
    for any promotion. The same numbers as `dimension_deficits`, for all dimensions in one pass.
    """
    sizes = catalogue_sizes[:N_GROUPS].astype(np.float64)
    # bincount per dimension, as dimension_deficits sums: the same floating-point sums, so the same ties
    exposed = np.concatenate(
        [np.bincount(m, weights=exposure, minlength=_SIZES[d]) for d, m in DIMENSION_GROUPS.items()]
    )
    catalogue = np.concatenate(
        [np.bincount(m, weights=sizes, minlength=_SIZES[d]) for d, m in DIMENSION_GROUPS.items()]
    )
    share = catalogue / max(sizes.sum(), 1.0)
    per_share = np.divide(exposed, share, out=np.zeros_like(exposed), where=share > 0)
    ratio, peak = np.empty_like(exposed), np.empty_like(exposed)
    for dimension, rows in _DIMENSION_ROWS.items():
        ratio[rows] = ratios.get(dimension, DEFAULT_TARGET_RATIO)
        peak[rows] = per_share[rows].max()
    target = ratio * share * peak
    deficit = np.maximum(target - exposed, 0.0)
    relative = np.divide(deficit, target, out=np.zeros_like(deficit), where=target > 0)
    urgency = np.maximum(relative[_GROUP_ROWS].max(axis=0), 0.0)
    backlog = urgency * (exposure.sum() / PAGE_EXPOSURE)
    absent = sizes <= 0
    urgency[absent], backlog[absent] = -1.0, -1.0
    return urgency, backlog


def plan_page(
    exposure: np.ndarray,
    catalogue_sizes: np.ndarray,
    ranked_groups: np.ndarray,
    ranked_scores: np.ndarray,
    k: int,
    control: ExposureControl,
    unseen: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose a page of k from a ranked candidate list, reserving slots for the groups furthest below target.

    `exposure`: position-weighted exposure per group so far (this version); `ranked_groups[i]`,
    `ranked_scores[i]`: group and ranker logit of the i-th best candidate. Returns (positions into the
    ranked list for the page's slots in rank order, reserved mask per slot). Promoted items come from
    below the page, so they take its last slots in their rank order. Within a group the best-scored
    candidate is promoted, except that one of a creator never shown yet (`unseen[i]`) goes first: a
    never-shown creator is the finest exposure deficit there is.
    """
    n = len(ranked_groups)
    k = min(k, n)
    page = np.arange(k)
    reserved = np.zeros(k, dtype=bool)
    cap = cap_slots(k, control.cap_share)
    if cap == 0 or k == 0:
        return page, reserved
    weights = position_weights(k)
    projected = exposure.astype(np.float64) + np.bincount(ranked_groups[:k], weights=weights, minlength=N_GROUPS)
    # The loop below runs up to cap x 18 times per request: it works on Python lists of the candidates below
    # the page, per group and in rank order, instead of masks over all ~500 candidates (that was ~1 ms/request).
    scores = ranked_scores.tolist()
    groups = ranked_groups.tolist()
    promotable_mask = ranked_scores >= control.min_score
    promotable = promotable_mask.tolist()
    unseen_mask = np.zeros(n, dtype=bool) if unseen is None else np.asarray(unseen, dtype=bool)
    is_unseen = unseen_mask.tolist()
    # group -> off-page promotable candidates, best first (and the same, never-shown creators only); split by a
    # stable sort on the group, which keeps rank order inside each group (a Python loop over ~500 was ~0.2 ms)
    off_page = np.flatnonzero(promotable_mask[k:]) + k
    below = _split_by_group(off_page, ranked_groups)
    below_unseen = _split_by_group(off_page[unseen_mask[off_page]], ranked_groups)
    page_list = page.tolist()
    reserved_list = [False] * k
    for _ in range(cap):
        urgency, backlog = group_backlog(projected, catalogue_sizes, control.target_ratios)
        over_exposed = set(_over_exposed(projected, catalogue_sizes, control.target_ratios).tolist())
        urgency_list = urgency.tolist()
        page_urgency = [urgency_list[groups[i]] for i in page_list]
        best: tuple[float, int, int, int] | None = None  # (net benefit, group, slot, incoming)
        for group in np.flatnonzero(urgency > 0).tolist():
            candidates = below.get(group)
            if not candidates:
                continue
            # leaving: an unreserved item of a group that is less behind than this one; the lowest-ranked,
            # unless a group is over-exposed (see _over_exposed): then its lowest-ranked item, wherever it is
            level = urgency_list[group]
            free = [s for s in range(k) if not reserved_list[s] and page_urgency[s] < level]
            if not free:
                continue
            over = [s for s in free if groups[page_list[s]] in over_exposed]
            fresh = below_unseen.get(group)
            slot = (over or free)[-1]
            incoming = fresh[0] if fresh else candidates[0]
            loss = max(0.0, scores[page_list[slot]] - scores[incoming])
            # with an infinite price only urgency counts (furthest behind first); else benefit minus cost
            # (max-weight on the deficit backlog, in page exposures: a starved group's price keeps rising)
            benefit = level if math.isinf(control.price) else control.price * float(backlog[group]) - loss
            if (math.isinf(control.price) or benefit >= 0) and (best is None or benefit > best[0]):
                best = (benefit, group, slot, incoming)
        if best is None:
            break
        _, group, slot, incoming = best
        leaving = page_list[slot]
        projected[groups[leaving]] -= weights[slot]
        projected[group] += weights[slot]
        below[group].remove(incoming)
        if is_unseen[incoming]:
            below_unseen[group].remove(incoming)
        if promotable[leaving]:  # off the page again: a candidate of its group, at its rank
            bisect.insort(below.setdefault(groups[leaving], []), leaving)
            if is_unseen[leaving]:
                bisect.insort(below_unseen.setdefault(groups[leaving], []), leaving)
        page_list[slot] = incoming
        reserved_list[slot] = True
    page = np.asarray(page_list, dtype=np.int64)
    reserved = np.asarray(reserved_list, dtype=bool)
    order = np.argsort(page, kind="stable")  # incoming items rank below the page: they take its last slots
    return page[order], reserved[order]


def _split_by_group(positions: np.ndarray, groups: np.ndarray) -> dict[int, list[int]]:
    """Group -> its entries of `positions` (ascending positions into the ranked list), for groups that have any."""
    if not len(positions):
        return {}
    by_group = positions[np.argsort(groups[positions], kind="stable")]
    present, starts = np.unique(groups[by_group], return_index=True)
    bounds = [*starts.tolist(), len(by_group)]
    members = by_group.tolist()
    return {g: members[bounds[j] : bounds[j + 1]] for j, g in enumerate(present.tolist())}


def _over_exposed(exposure: np.ndarray, catalogue_sizes: np.ndarray, ratios: Mapping[str, float]) -> np.ndarray:
    """Intersection groups whose exposure per catalogue share exceeds the least exposed group's over the ratio.

    Raising the lagging groups is not enough when one small group the ranker loves runs far ahead (measured:
    a 19-item group at 9 times its share while every other sat at 0.84): equity is min / max, so that
    group's items must leave the page first, wherever they rank.
    """
    present = catalogue_sizes[:N_GROUPS] > 0
    if present.sum() < 2 or exposure.sum() <= 0:
        return np.zeros(0, dtype=np.int64)
    per_share = exposure[present] / (catalogue_sizes[:N_GROUPS][present] / catalogue_sizes[:N_GROUPS].sum())
    ratio = ratios.get("creator_language_x_is_new", DEFAULT_TARGET_RATIO)
    ceiling = per_share.min() / ratio if ratio > 0 else math.inf
    return np.flatnonzero(present)[per_share > ceiling]


class ExposureTracker:
    """Position-weighted personalised exposure per model version and creator group.

    Read by every request, updated after each logged page, refilled from the impression log at startup.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exposure: dict[str, np.ndarray] = {}
        self._creators: dict[str, set[int]] = {}  # creators shown on a personalised page, per version

    def exposure(self, version: str) -> np.ndarray:
        """A copy of the exposure per group of `version` (zeros if it has served nothing)."""
        with self._lock:
            current = self._exposure.get(version)
            return np.zeros(N_GROUPS) if current is None else current.copy()

    def claim_restore(self) -> bool:
        """Whether this process adds the exposure restored from the logs (always; shared trackers: one worker)."""
        return True

    def shown_creators(self, version: str) -> frozenset[int]:
        """The creators `version` has shown on personalised pages."""
        with self._lock:
            return frozenset(self._creators.get(version, ()))

    def record(
        self, version: str, groups: np.ndarray, positions: np.ndarray, creators: np.ndarray | None = None
    ) -> list[int]:
        """Add one served page (group and 1-based position of each slot); returns creators shown for the first time."""
        weights = 1.0 / np.log2(1.0 + np.asarray(positions, dtype=np.float64))
        return self.add(version, groups, weights, creators)

    def add(
        self, version: str, groups: np.ndarray, exposure: np.ndarray, creators: np.ndarray | None = None
    ) -> list[int]:
        """Add `exposure[i]` to group `groups[i]` of `version` (also the startup scan); returns new creators."""
        page = np.bincount(np.asarray(groups, dtype=np.int64), weights=exposure, minlength=N_GROUPS)
        with self._lock:
            current = self._exposure.setdefault(version, np.zeros(N_GROUPS))
            current += page
            if creators is None:
                return []
            shown = self._creators.setdefault(version, set())
            new = [c for c in dict.fromkeys(np.asarray(creators).tolist()) if c not in shown]
            shown.update(new)
            return new
