"""The simulator's oracle page and oracle share on a toy ground truth whose answer is computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.lab.simulate import Oracle, _Behaviour, _RequestResult, _World, oracle_summary, user_outcomes
from streamrec.lab.truth import DEFAULT_PARAMS, GroundTruth

# relevance = sigmoid(logit) with base 0, affinity scale 1, no popularity or language term, and one factor:
# the item factor is the logit itself for a user whose factor is 1.
RELEVANCE = {10: 0.9, 11: 0.75, 12: 0.5, 13: 0.25, 14: 0.99}  # item 14 is not servable (not in the bundle)
SERVABLE = np.array([13, 12, 11, 10], dtype=np.int64)
USER = 1
EXAM2 = 1 / math.log2(3)  # examination of slot 2 with position_bias_power 1


def toy_truth() -> GroundTruth:
    items = np.array(sorted(RELEVANCE), dtype=np.int64)
    logits = np.array([math.log(RELEVANCE[i] / (1 - RELEVANCE[i])) for i in items])
    params = dict(DEFAULT_PARAMS) | {
        "base_logit": 0.0,
        "affinity_scale": 1.0,
        "popularity_weight": 0.0,
        "language_bonus": 0.0,
        "position_bias_power": 1.0,
        "complete_base": 0.2,
        "complete_slope": 0.5,
        "watch_beta_a0": 1.0,
        "watch_beta_a1": 2.0,
        "watch_beta_b": 2.0,
        "like_scale": 0.3,
    }
    return GroundTruth(
        user_ids=np.array([USER, 2], dtype=np.int64),
        user_factors=np.array([[1.0], [-1.0]]),
        user_language=np.zeros(2, dtype=np.int16),
        item_ids=items,
        item_factors=logits[:, None],
        popularity_logit=np.zeros(items.size),
        item_language=np.zeros(items.size, dtype=np.int16),
        languages=("en",),
        params=params,
    )


def request(behaviour: _Behaviour, oracle: Oracle, policy: str, served: list[int], other: list[int], n: int):
    """A _RequestResult valued exactly as the simulator's driver values one."""
    engaged, watch = behaviour.expectations(USER, np.array(served, dtype=np.int64))
    engaged_other, watch_other = behaviour.expectations(USER, np.array(other, dtype=np.int64))
    engaged_oracle, watch_oracle = behaviour.expectations(USER, oracle.page("v1", USER, len(served)))
    return _RequestResult(
        request_id=f"r{n}",
        user_id=USER,
        policy=policy,
        model_version="v1",
        slots=len(served),
        expected_engaged_served=engaged,
        expected_engaged_counterfactual=engaged_other,
        expected_watch_served=watch,
        expected_watch_counterfactual=watch_other,
        engaged_slots=0,
        watch_seconds=0.0,
        expected_engaged_oracle=engaged_oracle,
        expected_watch_oracle=watch_oracle,
    )


@pytest.fixture
def setup() -> tuple[_Behaviour, Oracle]:
    truth = toy_truth()
    world = _World(
        truth=truth,
        user_ids=truth.user_ids,
        item_length={int(i): 100.0 for i in truth.item_ids},
        organic_items=truth.item_ids,
        organic_weights=np.full(truth.item_ids.size, 1 / truth.item_ids.size),
    )
    oracle = Oracle(truth)
    oracle.set_catalogue("v1", SERVABLE)
    return _Behaviour(world), oracle


def test_oracle_page_is_the_top_k_servable_items_by_true_relevance(setup) -> None:
    _, oracle = setup
    assert oracle.page("v1", USER, 2).tolist() == [10, 11]  # 14 is more relevant but not servable
    assert oracle.page("v1", USER, 10).tolist() == [10, 11, 12, 13]  # capped at the catalogue
    assert oracle.page("v1", 2, 2).tolist() == [13, 12]  # user 2's factor is -1: the order flips


def test_oracle_share_equals_the_hand_computed_value(setup) -> None:
    behaviour, oracle = setup
    # served (personalised) page [10, 12], popularity (holdout) page [12, 13], oracle [10, 11]; two slots:
    # oracle 0.9 + 0.75 e, personalised 0.9 + 0.5 e, holdout 0.5 + 0.25 e, e = 1 / log2(3).
    # share = (0.4 + 0.25 e) / (0.4 + 0.5 e) = 0.7795...
    results = [request(behaviour, oracle, "personalized", [10, 12], [12, 13], n) for n in range(3)]
    row = oracle_summary(user_outcomes(results), results)
    assert row["causal_users"] == 1 and row["causal_requests"] == 3
    assert row["engaged_slots_per_page_oracle"] == pytest.approx(0.9 + 0.75 * EXAM2)
    assert row["engaged_slots_per_page_personalized"] == pytest.approx(0.9 + 0.5 * EXAM2)
    assert row["engaged_slots_per_page_holdout"] == pytest.approx(0.5 + 0.25 * EXAM2)
    assert row["engagement_rate_oracle"] == pytest.approx((0.9 + 0.75 * EXAM2) / 2)
    assert row["oracle_lift_engagement_rate"] == pytest.approx((0.4 + 0.5 * EXAM2) / 2)
    expected = (0.4 + 0.25 * EXAM2) / (0.4 + 0.5 * EXAM2)
    assert row["oracle_share_engagement"] == pytest.approx(expected)
    assert 0.77 < expected < 0.79


def test_the_oracle_itself_captures_everything_and_popularity_nothing(setup) -> None:
    behaviour, oracle = setup
    as_oracle = [request(behaviour, oracle, "personalized", [10, 11], [12, 13], 0)]
    assert oracle_summary(user_outcomes(as_oracle), as_oracle)["oracle_share_engagement"] == pytest.approx(1.0)
    # a holdout user: the served page is popularity and the counterfactual personalised page equals it
    as_popularity = [request(behaviour, oracle, "holdout", [12, 13], [12, 13], 0)]
    assert oracle_summary(user_outcomes(as_popularity), as_popularity)["oracle_share_engagement"] == pytest.approx(0)


def test_no_causal_user_means_no_share(setup) -> None:
    behaviour, oracle = setup
    cold = request(behaviour, oracle, "cold_start", [10, 11], [12, 13], 0)
    cold.expected_engaged_counterfactual = cold.expected_watch_counterfactual = None
    row = oracle_summary(user_outcomes([cold]), [cold])
    assert row == {"causal_users": 0, "causal_requests": 0}
