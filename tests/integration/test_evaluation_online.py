"""Online evaluation in dbt on a real warehouse: causal ATE against the randomised holdout, creator exposure
equity against a Python computation, and thresholds as tests that fail the build naming the metric."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from streamrec.batch.build import build
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall

pytestmark = pytest.mark.slow

TRUE_ENGAGEMENT = {"personalized": 0.30, "holdout": 0.20}  # per slot, so the true ATE is 0.10 by construction
TRUE_ATE = TRUE_ENGAGEMENT["personalized"] - TRUE_ENGAGEMENT["holdout"]
# Half the users are heavy: they engage more under either policy (+0.15, light users -0.15, so the population
# means stay 0.30 / 0.20) and also watch much more organically. That confounds the naive engaged-vs-not gap.
HEAVY_SHIFT = 0.15
ORGANIC_SECONDS = {True: 3_000.0, False: 200.0}
VERSION = "v-eval"
REQUESTS_PER_USER = 2
SLOTS = 10
Z = 1.959963984540054
Z_POWER = 0.8416212335729143


def _catalogue(settings: Settings) -> tuple[list[int], dict[int, tuple[str, str]]]:
    """Users and items (with creator language and tenure) of the latest feature snapshot."""
    with connect(settings, read_only=True) as con:
        users = [
            r[0]
            for r in fetchall(
                con,
                "select user_id from features.user_features "
                "where as_of = (select max(as_of) from features.user_features) order by user_id",
            )
        ]
        items = fetchall(
            con,
            "select item_id, item_creator_language_code, item_creator_is_new_flag from features.item_features "
            "where as_of = (select max(as_of) from features.item_features) order by item_id",
        )
    return users, {item: (language, "new" if is_new else "established") for item, language, is_new in items}


def _serve(settings: Settings, users: list[int], items: list[int], seed: int) -> tuple[dict, list[tuple]]:
    """Write impressions and events for half holdout / half personalised users; return (impressions, slots)."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 6, 2, 8, 0, 0)
    impressions: dict[str, list] = defaultdict(list)
    events: dict[str, list] = defaultdict(list)
    slots: list[tuple] = []  # (user, policy, position, item, engaged)
    creators = {item: item // 10 for item in items}
    for user in users:
        policy = "holdout" if rng.random() < 0.5 else "personalized"
        heavy = bool(rng.random() < 0.5)
        engagement = TRUE_ENGAGEMENT[policy] + (HEAVY_SHIFT if heavy else -HEAVY_SHIFT)
        for request in range(REQUESTS_PER_USER):
            request_id = f"r{user}-{request}"
            served_at = start + timedelta(minutes=int(user) % 600, seconds=request)
            latency = float(rng.uniform(20.0, 80.0))
            for position, item in enumerate(rng.choice(items, size=SLOTS, replace=False).tolist(), start=1):
                engaged = bool(rng.random() < engagement)
                slots.append((user, policy, position, item, engaged))
                for name, value in (
                    ("request_id", request_id),
                    ("position", position),
                    ("served_at", served_at),
                    ("user_id", user),
                    ("item_id", item),
                    ("creator_id", creators[item]),
                    ("score", float(-position)),
                    ("propensity", 1.0),
                    ("policy", policy),
                    ("model_version", VERSION),
                    ("canary_phase", None),
                    ("latency_ms", latency),
                    ("snapshot_id", "fs-test"),
                    ("feature_age_seconds", 3600.0 * (6 + user % 13)),  # 6..18 h old features
                ):
                    impressions[name].append(value)
                kind = str(rng.choice(["play", "complete", "like"])) if engaged else "skip"
                if engaged or rng.random() < 0.3:
                    watched = 120.0 if engaged else 0.0
                    _event(events, f"{request_id}-{position}", request_id, user, item, kind, served_at, watched)
        # organic plays (no request): count in watch time, not in engagement
        _event(events, f"organic-{user}", None, user, items[0], "play", start, ORGANIC_SECONDS[heavy])
    with connect(settings) as con:
        con.register("new_impressions", pa.table(impressions))
        con.execute("insert into ops.impressions select * from new_impressions")
        con.register("new_events", pa.table(events))
        con.execute("insert into ops.events select * from new_events")
        con.execute(
            "insert into ops.promotions values ('p1', ?, null, 'promote', ?, 'test', 'online evaluation test')",
            [VERSION, start],
        )
    return impressions, slots


def _event(
    events: dict, event_id: str, request_id: str | None, user: int, item: int, kind: str, at: datetime, watched: float
) -> None:
    for name, value in (
        ("event_id", event_id),
        ("request_id", request_id),
        ("user_id", user),
        ("item_id", item),
        ("event_type", kind),
        ("watch_seconds", watched),
        ("event_ts", at + timedelta(seconds=30)),
        ("received_at", at + timedelta(seconds=31)),
    ):
        events[name].append(value)


def _welch(slots: list[tuple]) -> tuple[float, float]:
    """Difference in mean per-user engagement rate (personalised - holdout) and its Welch standard error."""
    per_user: dict[tuple[int, str], list[bool]] = defaultdict(list)
    for user, policy, _, _, engaged in slots:
        per_user[user, policy].append(engaged)
    arms = {
        arm: np.array([np.mean(v) for (_, policy), v in per_user.items() if policy == arm])
        for arm in ("personalized", "holdout")
    }
    effect = arms["personalized"].mean() - arms["holdout"].mean()
    se = math.sqrt(sum(a.var(ddof=1) / a.size for a in arms.values()))
    return float(effect), se


def _python_equity(slots: list[tuple], groups: dict[int, tuple[str, str]], threshold: float) -> dict[str, float]:
    """Equity per dimension with the documented formula: judged groups' min / max of exposure / catalogue share."""
    dimensions = {
        "creator_language": lambda g: g[0],
        "creator_is_new": lambda g: g[1],
        "creator_language_x_is_new": lambda g: f"{g[0]} x {g[1]}",
    }
    served = [(position, item) for _, policy, position, item, _ in slots if policy == "personalized"]
    equity = {}
    for dimension, label in dimensions.items():
        catalogue: dict[str, int] = defaultdict(int)
        for group in groups.values():
            catalogue[label(group)] += 1
        exposure: dict[str, float] = defaultdict(float)
        for position, item in served:
            exposure[label(groups[item])] += 1.0 / math.log2(1.0 + position)
        total = sum(exposure.values())
        normalised = []
        for group, count in catalogue.items():
            p0 = count / len(groups)
            p1 = threshold * p0
            needed = math.ceil(
                (Z * math.sqrt(p0 * (1 - p0)) + Z_POWER * math.sqrt(p1 * (1 - p1))) ** 2 / (p0 - p1) ** 2
            )
            if len(served) >= needed:
                normalised.append((exposure[group] / total) / p0)
        if len(normalised) >= 2:
            equity[dimension] = min(normalised) / max(normalised)
    return equity


def _scorecard(settings: Settings) -> dict[str, dict]:
    with connect(settings, read_only=True) as con:
        rows = fetchall(con, "select metric, value, ci_low, ci_high, sample_size, status from evaluation.scorecard")
    return {r[0]: dict(zip(("value", "ci_low", "ci_high", "sample_size", "status"), r[1:], strict=True)) for r in rows}


def test_with_no_impressions_every_online_metric_is_insufficient_data(built_home: Path) -> None:
    scorecard = _scorecard(Settings(home=built_home))
    assert len(scorecard) == 14
    assert {row["status"] for row in scorecard.values()} == {"INSUFFICIENT_DATA"}


def test_ate_covers_the_true_effect_equity_matches_python_and_a_failed_threshold_fails_the_build(
    built_home: Path, copy_home
) -> None:
    settings = copy_home(built_home)
    users, groups = _catalogue(settings)
    assert len(users) >= 200 and len(groups) >= 100
    # A fixed seed keeps the test deterministic; over 100 seeds this design's interval missed 0.10 five times,
    # as a 95% interval should (so a miss here would mean a broken estimator, not bad luck, for this seed).
    _, slots = _serve(settings, users, sorted(groups), seed=1)

    build(settings, select="evaluation.online+")

    with connect(settings, read_only=True) as con:
        effects = {
            r[0]: r[1:]
            for r in fetchall(
                con,
                "select estimate_name, effect, standard_error, ci_low, ci_high, treated_count, control_count "
                "from evaluation.online_causal_effects where model_version = ?",
                [VERSION],
            )
        }
        equity = dict(
            fetchall(
                con,
                "select group_dimension, exposure_equity from evaluation.online_creator_exposure_equity "
                "where exposure_equity is not null",
            )
        )
        threshold = fetchall(
            con, "select threshold from evaluation.evaluation_thresholds where metric = 'creator_exposure_equity'"
        )[0][0]

    # causal: the interval covers the ATE built into the data, and equals the textbook Welch computation
    effect, se, ci_low, ci_high, treated, control = effects["ate_engagement_rate"]
    expected_effect, expected_se = _welch(slots)
    assert effect == pytest.approx(expected_effect, abs=1e-9)
    assert se == pytest.approx(expected_se, rel=1e-9)
    assert ci_low <= TRUE_ATE <= ci_high, (ci_low, ci_high)
    assert treated + control == len(users)
    # watch time: the randomised comparison covers its true effect (slots x ATE x 120 s per engaged slot);
    # the naive engaged-vs-not gap is mostly heavy users' organic watching, far outside that interval
    true_watch_effect = REQUESTS_PER_USER * SLOTS * TRUE_ATE * 120.0
    _, _, watch_low, watch_high, _, _ = effects["ate_watch_seconds"]
    assert watch_low <= true_watch_effect <= watch_high
    assert effects["naive_watch_seconds"][0] > max(watch_high, 3 * true_watch_effect)

    # fairness: same numbers as an independent Python computation of the documented formula
    expected_equity = _python_equity(slots, groups, threshold)
    assert set(expected_equity) <= set(equity) and expected_equity
    for dimension, value in expected_equity.items():
        assert equity[dimension] == pytest.approx(value, abs=1e-9), dimension

    scorecard = _scorecard(settings)
    # PASS by its interval, not its point: the whole 95% interval clears the 0.01 threshold
    assert scorecard["causal_ate_engagement"]["ci_low"] >= 0.01
    assert scorecard["causal_ate_engagement"]["status"] == "PASS"
    assert scorecard["causal_ate_engagement"]["value"] == pytest.approx(expected_effect, abs=1e-9)
    assert scorecard["creator_exposure_equity"]["value"] == pytest.approx(min(expected_equity.values()), abs=1e-9)
    assert scorecard["p99_latency_ms"]["status"] == "PASS"
    assert scorecard["p99_latency_ms"]["sample_size"] == len(users) * REQUESTS_PER_USER
    assert scorecard["feature_store_hit_rate"]["value"] == 1.0
    ages = [6 + u % 13 for u in users for _ in range(REQUESTS_PER_USER)]
    assert scorecard["feature_snapshot_age_hours"]["value"] == pytest.approx(np.mean(ages))
    assert scorecard["feature_snapshot_age_hours"]["status"] == "PASS"  # far below 36 h, n above 100
    assert scorecard["ranking_hit_at_10"]["status"] == "INSUFFICIENT_DATA"  # no offline metrics for this version
    assert "FAIL" not in {row["status"] for row in scorecard.values()}

    # a slow serving path breaks the p99 latency threshold: the build fails and says which metric and why
    with connect(settings) as con:
        con.execute("update ops.impressions set latency_ms = 450.0 + position")
    with pytest.raises(StreamRecError) as failure:
        build(settings, select="evaluation.online+")
    message = str(failure.value)
    assert "threshold_met_p99_latency_ms" in message
    # named as a scorecard failure of its area, with the interval that decided it (not as feature drift)
    assert "scorecard FAIL (health): p99_latency_ms = 460.0 [95% CI 460.0, 460.0] > threshold 200.0" in message
    assert "threshold_met_causal_ate_engagement" not in message
    assert "drift" not in message
    # only a threshold failed, so the measured scorecard is published for `streamrec report` to show
    with connect(settings, read_only=True) as con:
        status = fetchall(con, "select status, value from evaluation.scorecard where metric = 'p99_latency_ms'")
    assert status == [("FAIL", 460.0)]

    # latencies 0..202 ms: the p99 sits on the 200 ms threshold and its interval straddles it. The build
    # reports the INCONCLUSIVE row (naming its area and the sample that would decide it) and succeeds;
    # under --strict (var evaluation_strict) the same row fails it.
    with connect(settings) as con:
        con.execute("update ops.impressions set latency_ms = cast(hash(request_id) % 203 as double)")
    build(settings, select="evaluation.online+")
    with connect(settings, read_only=True) as con:
        row = fetchall(
            con,
            "select status, ci_low, ci_high, samples_to_decide from evaluation.scorecard "
            "where metric = 'p99_latency_ms'",
        )[0]
    assert row[0] == "INCONCLUSIVE" and row[1] <= 200.0 <= row[2] and row[3] > 0, row
    with pytest.raises(StreamRecError) as strict:
        build(settings, select="evaluation.online+", variables={"evaluation_strict": True})
    assert "threshold_decided_p99_latency_ms" in str(strict.value)
    assert "scorecard INCONCLUSIVE (health): p99_latency_ms" in str(strict.value)
