"""Minimum-exposure re-rank: reserve slots on each page for the most under-exposed creator groups.

A creator group is (creator language, new-creator flag), from the item features
`item_creator_language_code` and `item_creator_is_new_flag`: 9 languages x 2 = 18 groups, numbered
`language_index * 2 + flag` in contract code order, so the numbering does not depend on a bundle.
Exposure is counted per group from the impression log (scanned at startup, then updated in memory
as impressions are served) and compared per catalogue item, so a large group is not called
over-exposed just for being large.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from streamrec.contracts.groups import CREATOR_LANGUAGES, N_CREATOR_GROUPS

LANGUAGES = CREATOR_LANGUAGES
N_GROUPS = N_CREATOR_GROUPS


def group_of(language_index: np.ndarray, is_new: np.ndarray) -> np.ndarray:
    """Group id per item from the language code index and the new-creator flag (0/1)."""
    return (np.asarray(language_index, dtype=np.int16) * 2 + np.asarray(is_new, dtype=np.int16)).astype(np.int16)


def group_name(group: int) -> str:
    """`en/new`, `ja/established`: the readable name of a group id."""
    return f"{LANGUAGES[group // 2]}/{'new' if group % 2 else 'established'}"


def reserved_slot_count(k: int, share: float) -> int:
    """Slots on a page of k reserved for under-exposed groups: floor(share·k), and at least one when k ≥ 10."""
    if share <= 0:
        return 0
    reserved = math.floor(share * k + 1e-9)
    if k >= 10:
        reserved = max(reserved, 1)
    return min(reserved, k)


class ExposureTracker:
    """Impressions served per creator group; read by every request, updated after each logged page."""

    def __init__(self, initial: np.ndarray | None = None) -> None:
        self._lock = threading.Lock()
        self._counts = np.zeros(N_GROUPS, dtype=np.int64) if initial is None else initial.astype(np.int64).copy()

    def counts(self) -> np.ndarray:
        """A copy of the impressions per group."""
        with self._lock:
            return self._counts.copy()

    def record(self, groups: np.ndarray) -> None:
        """Add one impression for each group id in `groups`."""
        with self._lock:
            np.add.at(self._counts, np.asarray(groups, dtype=np.int64), 1)

    def add(self, groups: np.ndarray, impressions: np.ndarray) -> None:
        """Add `impressions[i]` impressions to group `groups[i]` (the startup scan of the log)."""
        with self._lock:
            np.add.at(self._counts, np.asarray(groups, dtype=np.int64), np.asarray(impressions, dtype=np.int64))

    def under_exposed(self, catalogue_sizes: np.ndarray, present: np.ndarray, n_groups: int) -> np.ndarray:
        """The `n_groups` groups among `present` with the fewest impressions per catalogue item (ties: lower id)."""
        present = np.flatnonzero(np.bincount(np.asarray(present, dtype=np.int64), minlength=N_GROUPS))
        with self._lock:
            per_item = self._counts[present] / np.maximum(catalogue_sizes[present], 1)
        order = np.lexsort((present, per_item))
        return present[order[:n_groups]]


def min_exposure_rerank(
    ranked_groups: np.ndarray, k: int, n_reserved: int, target_groups: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Choose a page of k from a ranked candidate list so n_reserved slots hold the target groups' items.

    `ranked_groups[i]` is the group of the i-th best candidate; `target_groups` are the under-exposed
    groups, least exposed first. Reserved slot j goes to target group j (cycling when there are more
    slots than groups), so the least-exposed group gets the first one: "any target group" would let a
    common group that is often on the page anyway stand in for a starved one forever. For each slot:
    if an item of its group is already on the page it is marked reserved and nothing moves (zero
    cost); otherwise the group's best candidate below the page replaces the lowest-ranked unreserved
    item; a group with no candidate at all yields its slot to the next group. Reserved slots are
    fixed: exploration must not move them, so the guarantee holds for every list the stochastic
    policy can serve. Returns (positions into the ranked list for the page's slots in rank order,
    reserved mask per slot).
    """
    n = len(ranked_groups)
    k = min(k, n)
    page = np.arange(k)
    reserved = np.zeros(k, dtype=bool)
    targets = [int(g) for g in np.asarray(target_groups).tolist()]
    if not targets or n_reserved <= 0:
        return page, reserved
    on_page = np.zeros(n, dtype=bool)
    on_page[:k] = True
    for slot in range(min(n_reserved, k)):
        first = slot % len(targets)
        for group in targets[first:] + targets[:first]:
            held = np.flatnonzero((ranked_groups[page] == group) & ~reserved)
            if len(held):
                reserved[held[0]] = True
                break
            below = np.flatnonzero((ranked_groups == group) & ~on_page)
            free = np.flatnonzero(~reserved)
            if len(below) and len(free):
                out = free[-1]  # the lowest-ranked unreserved item leaves the page
                on_page[page[out]] = False
                page[out] = below[0]
                on_page[below[0]] = True
                reserved[out] = True
                break
    order = np.argsort(page, kind="stable")  # incoming items rank below the page: they take its last slots
    return page[order], reserved[order]
