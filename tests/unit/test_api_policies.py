"""Serving policies in isolation: exploration propensities, holdout, canary routing and states.

Exposure control is tested in test_exposure_control.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.api.services import canary_state as canary
from streamrec.api.services.assignment import in_holdout, routes_to_candidate, unit_hash
from streamrec.api.services.exploration import (
    ExplorationPolicy,
    epsilon_greedy_marginals,
    explore,
    plackett_luce_marginals,
)
from streamrec.api.services.fairness import group_name, group_of


def test_group_ids_cover_language_by_flag() -> None:
    groups = group_of(np.array([0, 0, 8]), np.array([0, 1, 1]))
    assert groups.tolist() == [0, 1, 17]
    assert group_name(1) == "en/new" and group_name(17).endswith("/new")


def test_epsilon_greedy_marginals_are_a_distribution_per_slot() -> None:
    marginals = epsilon_greedy_marginals(n_pool=30, m_slots=9, epsilon=0.2)
    assert np.allclose(marginals.sum(axis=0), 1.0)
    assert (marginals > 0).all() and (marginals <= 1).all()
    assert (marginals.sum(axis=1) <= 1 + 1e-12).all()  # an item is in at most one slot


def test_epsilon_greedy_propensities_match_observed_frequencies() -> None:
    rng = np.random.default_rng(0)
    page, reserved = np.arange(5), np.zeros(5, dtype=bool)
    extra = np.arange(5, 20)
    policy = ExplorationPolicy(kind="epsilon_greedy", epsilon=0.3, pool=20)
    counts = np.zeros((20, 5))
    logged = {}
    draws = 20_000
    for _ in range(draws):
        served, propensity = explore(page, reserved, extra, -np.arange(20.0), policy, rng)
        counts[served, np.arange(5)] += 1
        for slot, (item, p) in enumerate(zip(served, propensity, strict=True)):
            logged[(int(item), slot)] = p
    for (item, slot), p in logged.items():
        assert 0 < p <= 1
        assert abs(counts[item, slot] / draws - p) < 0.01, (item, slot)


def test_plackett_luce_marginal_estimate_matches_frequencies() -> None:
    rng = np.random.default_rng(1)
    scores = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -0.5])
    _, estimate = plackett_luce_marginals(scores, 3, temperature=1.0, samples=20_000, rng=rng)
    assert np.allclose(estimate.sum(axis=0), 1.0)
    # Exact P(item 0 first) = w0 / sum(w).
    weights = np.exp(scores)
    assert abs(estimate[0, 0] - weights[0] / weights.sum()) < 0.01
    frequencies = np.zeros((6, 3))
    for _ in range(5000):
        draw, _ = plackett_luce_marginals(scores, 3, 1.0, 0, rng)
        frequencies[draw, np.arange(3)] += 1
    assert np.abs(frequencies / 5000 - estimate).max() < 0.03


def test_reserved_slots_survive_exploration() -> None:
    rng = np.random.default_rng(2)
    page = np.arange(10)
    reserved = np.zeros(10, dtype=bool)
    reserved[9] = True
    for kind in ("epsilon_greedy", "plackett_luce"):
        policy = ExplorationPolicy(kind=kind, epsilon=1.0, samples=200, pool=30)
        for _ in range(50):
            served, propensity = explore(page, reserved, np.arange(10, 40), np.linspace(1, -1, 40), policy, rng)
            assert served[9] == 9 and propensity[9] == 1.0
            assert len(set(served.tolist())) == 10
            assert ((propensity > 0) & (propensity <= 1)).all()


def test_holdout_share_is_close_to_configured_and_stable() -> None:
    users = np.arange(100_000)
    first = np.array([in_holdout(int(u), 0.05, "salt-a") for u in users])
    again = np.array([in_holdout(int(u), 0.05, "salt-a") for u in users])
    other_salt = np.array([in_holdout(int(u), 0.05, "salt-b") for u in users])
    assert (first == again).all()
    assert abs(first.mean() - 0.05) < 0.003  # binomial sd is 0.0007
    assert abs((first & other_salt).mean() - 0.0025) < 0.001  # salts are independent


def test_canary_routing_is_stable_and_grows_monotonically() -> None:
    users = range(20_000)
    at_10 = {u for u in users if routes_to_candidate(u, 0.10, "c")}
    at_25 = {u for u in users if routes_to_candidate(u, 0.25, "c")}
    assert at_10 <= at_25  # phase 2 keeps phase 1's users on the candidate
    assert abs(len(at_10) / 20_000 - 0.10) < 0.01 and abs(len(at_25) / 20_000 - 0.25) < 0.015
    assert at_10 == {u for u in users if routes_to_candidate(u, 0.10, "c")}
    assert 0 <= unit_hash("c", 1) < 1


def test_canary_state_machine() -> None:
    state = canary.start(canary.CanaryState(), "v2", 1, 0.1)
    assert (state.state, state.phase, state.routing_share, state.phase_label) == ("running", 1, 0.1, "phase1")
    held = canary.hold(state)
    assert held.routing_share == 0 and held.phase_label == "none"
    state, finished = canary.advance(held, 0.25)
    assert (state.phase, state.share, finished) == (2, 0.25, False)
    done, finished = canary.advance(state, 0.25)
    assert finished and done.state == "idle"
    with pytest.raises(canary.CanaryConflict, match="no canary"):
        canary.rollback(done)
    with pytest.raises(canary.CanaryConflict, match="roll it back"):
        canary.start(state, "v3", 1, 0.1)
