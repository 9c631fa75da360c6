"""The stochastic serving policy and the exact (or estimated) probability of each served item at its slot.

Reserved (fairness) slots are deterministic given the exposure counters: their items are logged with
propensity 1. The other `m = k - r` slots are filled from a free pool of `n` candidates: the
re-ranked page's non-reserved items followed by the next-best candidates, `n = max(k, pool) - r`.

- `epsilon_greedy`: with probability 1-ε the greedy list (re-ranked order); with probability ε a
  uniformly random ordered selection of m distinct items from the free pool. The marginal
  probability of item i at free slot j is exactly (1-ε)·[greedy_j = i] + ε/n.
- `plackett_luce`: slots are filled one after another, item i chosen with probability
  exp(s_i/τ) / Σ_remaining exp(s/τ) (s = ranker logit, τ = temperature), sampled with the
  Gumbel-top-m trick. The marginal P(i at j) has no closed form; it is estimated from N extra
  independent draws plus the served one: (count + 1) / (N + 1) for the served (i, j), so it is
  never 0 and each slot's estimates over the pool sum to 1.
- `none`: the greedy list, every propensity 1.

Docs: docs/api.md, "Propensities".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExplorationPolicy:
    """Which policy, and its knobs."""

    kind: str = "epsilon_greedy"  # epsilon_greedy | plackett_luce | none
    epsilon: float = 0.1
    temperature: float = 0.5
    samples: int = 1000
    pool: int = 50


def epsilon_greedy_marginals(n_pool: int, m_slots: int, epsilon: float) -> np.ndarray:
    """P(pool item i at free slot j) for epsilon-greedy, shape (n_pool, m_slots); the greedy list is items 0..m-1."""
    marginals = np.full((n_pool, m_slots), epsilon / n_pool)
    marginals[np.arange(m_slots), np.arange(m_slots)] += 1.0 - epsilon
    return marginals


def _gumbel_top(keys: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of pool indices in slot order for each row of perturbed keys (one Plackett-Luce draw per row)."""
    perturbed = keys + rng.gumbel(size=keys.shape)
    top = np.argpartition(-perturbed, m - 1, axis=-1)[..., :m] if m < keys.shape[-1] else np.indices(keys.shape)[-1]
    order = np.argsort(-np.take_along_axis(perturbed, top, axis=-1), axis=-1)
    return np.take_along_axis(top, order, axis=-1)


def plackett_luce_marginals(
    scores: np.ndarray, m_slots: int, temperature: float, samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One Plackett-Luce draw of m slots from `scores` and the (n_pool, m) Monte Carlo marginal estimate.

    The served draw counts as one of the N + 1 samples, so every served (item, slot) has an
    estimate of at least 1/(N + 1) and each column sums to 1.
    """
    keys = np.asarray(scores, dtype=np.float64) / temperature
    draws = _gumbel_top(np.broadcast_to(keys, (samples + 1, len(keys))), m_slots, rng)  # (N+1, m)
    counts = np.zeros((len(keys), m_slots))
    np.add.at(counts, (draws, np.broadcast_to(np.arange(m_slots), draws.shape)), 1.0)
    return draws[0], counts / (samples + 1)


def explore(
    page: np.ndarray,
    reserved: np.ndarray,
    extra: np.ndarray,
    scores_of: np.ndarray,
    policy: ExplorationPolicy,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The served list and each slot's propensity.

    `page`: the re-ranked page (candidate positions, best first), `reserved`: its fixed slots,
    `extra`: further candidates in rank order (not on the page), `scores_of[c]`: ranker score of
    candidate c. Returns (candidate positions per slot, propensity per slot).
    """
    k = len(page)
    served = page.copy()
    propensity = np.ones(k)
    free_slots = np.flatnonzero(~reserved)
    m = len(free_slots)
    if policy.kind == "none" or m == 0:
        return served, propensity
    greedy = page[free_slots]
    n_extra = max(0, max(policy.pool, k) - k)
    pool = np.concatenate([greedy, extra[:n_extra]])  # greedy order first
    n = len(pool)
    if policy.kind == "epsilon_greedy":
        choice = rng.choice(n, size=m, replace=False) if rng.random() < policy.epsilon else np.arange(m)
        marginals = epsilon_greedy_marginals(n, m, policy.epsilon)
    elif policy.kind == "plackett_luce":
        choice, marginals = plackett_luce_marginals(scores_of[pool], m, policy.temperature, policy.samples, rng)
    else:
        raise ValueError(f"unknown exploration policy {policy.kind!r}")
    served[free_slots] = pool[choice]
    propensity[free_slots] = marginals[choice, np.arange(m)]
    return served, propensity
