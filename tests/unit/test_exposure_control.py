"""Amortized exposure control: targets and deficits by hand, page plans, restart from the log, exact propensities."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamrec.api.config import ApiSettings
from streamrec.api.services.fairness import (
    DIMENSION_GROUPS,
    N_GROUPS,
    PAGE_EXPOSURE,
    ExposureControl,
    ExposureTracker,
    dimension_deficits,
    group_backlog,
    group_urgency,
    plan_page,
)
from streamrec.api.services.recommender import Recommender, restore_exposure
from streamrec.api.services.serving_bundle import ServingBundle, load_serving_bundle
from streamrec.api.services.serving_logs import scan_impressions
from streamrec.core.eventlog import DurableLog, ImpressionRecord
from streamrec.lab.synthetic_bundle import write_synthetic_bundle

# Toy catalogue: en/established (group 2) 60 items, en/new (3) 20, fr/established (4) 20; all others empty.
EN_EST, EN_NEW, FR_EST = 2, 3, 4
SIZES = np.zeros(N_GROUPS, dtype=np.int64)
SIZES[[EN_EST, EN_NEW, FR_EST]] = [60, 20, 20]
DIMENSIONS = ("creator_language", "creator_is_new", "creator_language_x_is_new")


def test_targets_and_deficits_by_hand() -> None:
    exposure = np.zeros(N_GROUPS)
    exposure[[EN_EST, EN_NEW, FR_EST]] = [30.0, 40.0, 2.0]
    result = dimension_deficits(
        exposure, SIZES, dict.fromkeys(("creator_language", "creator_is_new", "creator_language_x_is_new"), 0.5)
    )
    # intersection: exposure per catalogue share = 30/.6 = 50, 40/.2 = 200, 2/.2 = 10; max 200.
    # targets = 0.5 * share * 200 = 60, 20, 20; deficits = 30, 0, 18
    target, deficit = result["creator_language_x_is_new"]
    assert target[[EN_EST, EN_NEW, FR_EST]] == pytest.approx([60.0, 20.0, 20.0])
    assert deficit[[EN_EST, EN_NEW, FR_EST]] == pytest.approx([30.0, 0.0, 18.0])
    assert deficit.sum() == pytest.approx(48.0)
    # language (codes index 1 = en, 2 = fr): en 70 / .8 = 87.5, fr 2 / .2 = 10; targets .5*.8*87.5 = 35, .5*.2*87.5
    target, deficit = result["creator_language"]
    assert target[[1, 2]] == pytest.approx([35.0, 8.75]) and deficit[[1, 2]] == pytest.approx([0.0, 6.75])
    # new flag: established 32 / .8 = 40, new 40 / .2 = 200; targets .5*.8*200 = 80, 20 -> established short 48
    target, deficit = result["creator_is_new"]
    assert target == pytest.approx([80.0, 20.0]) and deficit == pytest.approx([48.0, 0.0])
    # urgency of an intersection group = its largest relative deficit over the dimensions it belongs to
    urgency = group_urgency(exposure, SIZES, {d: 0.5 for d in result})
    assert urgency[EN_EST] == pytest.approx(max(30 / 60, 48 / 80))
    assert urgency[FR_EST] == pytest.approx(max(18 / 20, 6.75 / 8.75, 48 / 80))
    assert urgency[EN_NEW] == 0.0 and urgency[0] == -1.0  # on target; not in the catalogue


def test_group_backlog_is_the_per_dimension_definition_on_random_catalogues() -> None:
    """The one-pass group_backlog equals urgency/backlog derived dimension by dimension from dimension_deficits."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        sizes = rng.integers(0, 50, size=N_GROUPS) * (rng.random(N_GROUPS) > 0.3)
        exposure = rng.gamma(1.0, 40.0, size=N_GROUPS) * (rng.random(N_GROUPS) > 0.3)
        ratios = {d: float(rng.choice([0.5, 0.6, 0.7, 1.0])) for d in DIMENSIONS}
        urgency, backlog = np.zeros(N_GROUPS), np.zeros(N_GROUPS)
        for dimension, (target, deficit) in dimension_deficits(exposure, sizes, ratios).items():
            relative = np.divide(deficit, target, out=np.zeros_like(deficit), where=target > 0)
            urgency = np.maximum(urgency, relative[DIMENSION_GROUPS[dimension]])
        backlog = urgency * exposure.sum() / PAGE_EXPOSURE
        urgency[sizes <= 0], backlog[sizes <= 0] = -1.0, -1.0
        got_urgency, got_backlog = group_backlog(exposure, sizes, ratios)
        assert np.array_equal(got_urgency, urgency) and np.allclose(got_backlog, backlog, rtol=1e-12)


def test_no_exposure_means_no_target_and_no_reserved_slot() -> None:
    groups = np.array([EN_NEW] * 15 + [FR_EST] * 5, dtype=np.int16)
    page, reserved = plan_page(np.zeros(N_GROUPS), SIZES, groups, -np.arange(20.0), 10, ExposureControl(cap_share=0.3))
    # the page's own exposure already puts en/new ahead: fr/established (group 4) gets a slot, within the cap
    assert page[:7].tolist() == list(range(7)) and reserved.sum() <= 3
    on_target = np.zeros(N_GROUPS)
    on_target[[EN_EST, EN_NEW, FR_EST]] = [600.0, 200.0, 200.0]  # exactly proportional: every ratio 1
    groups = np.array([EN_EST, EN_NEW, FR_EST] * 7, dtype=np.int16)
    page, reserved = plan_page(on_target, SIZES, groups, -np.arange(21.0), 10, ExposureControl())
    assert page.tolist() == list(range(10)) and not reserved.any()


def test_slots_grow_with_the_deficit_up_to_the_cap() -> None:
    groups = np.array([EN_EST] * 10 + [FR_EST] * 5 + [EN_NEW] * 5, dtype=np.int16)
    scores = -np.arange(20.0)
    control = ExposureControl(cap_share=0.3, target_ratios=dict.fromkeys(DIMENSIONS, 1.0))
    # Slightly behind. After this page (4.54 more for en/established): exposure per catalogue share is
    # 1007.6 (en/est), 1007.5 (en/new), 1005 (fr/est): fr/established is 0.5 short of its target 201.5,
    # less than two bottom slots (0.289 + 0.301) hold, so it gets two and no more.
    exposure = np.zeros(N_GROUPS)
    exposure[[EN_EST, EN_NEW, FR_EST]] = [600.0, 201.5, 201.0]
    page, reserved = plan_page(exposure, SIZES, groups, scores, 10, control)
    assert reserved.tolist() == [False] * 8 + [True, True]
    assert page.tolist() == [*range(8), 10, 11]  # fr/established's two best candidates replace the last two
    # far behind: the cap binds, and the ranker's top 7 stay
    exposure[[FR_EST, EN_NEW]] = [0.0, 0.0]
    page, reserved = plan_page(exposure, SIZES, groups, scores, 10, control)
    assert reserved.sum() == 3 and reserved[-3:].all() and page[:7].tolist() == list(range(7))
    assert set(page[reserved].tolist()) <= {10, 11, 12, 15, 16}
    assert not plan_page(exposure, SIZES, groups, scores, 10, ExposureControl(cap_share=0.0))[1].any()


def test_min_score_and_never_shown_creators() -> None:
    groups = np.array([EN_EST] * 10 + [FR_EST] * 3, dtype=np.int16)
    scores = np.array([5.0] * 10 + [-1.0, -2.0, -3.0])
    exposure = np.zeros(N_GROUPS)
    exposure[[EN_EST, EN_NEW]] = [600.0, 200.0]
    blocked = ExposureControl(cap_share=0.3, min_score=0.0)  # fr items all score below 0: none promoted
    assert not plan_page(exposure, SIZES, groups, scores, 10, blocked)[1].any()
    unseen = np.zeros(13, dtype=bool)
    unseen[12] = True  # candidate 12's creator was never shown: it goes before the better-scored 10
    page, reserved = plan_page(exposure, SIZES, groups, scores, 10, ExposureControl(cap_share=0.1), unseen)
    assert page[reserved].tolist() == [12]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> ServingBundle:
    root = tmp_path_factory.mktemp("control")
    return load_serving_bundle(write_synthetic_bundle(root, "v1", n_users=80, n_items=600, seed=3))


def _recommender(home: Path, **env: str) -> Recommender:
    config = ApiSettings.from_env(
        {"STREAMREC_HOME": str(home), "STREAMREC_HOLDOUT_SHARE": "0", "STREAMREC_SEED": "1", **env}
    )
    return Recommender(config, ExposureTracker())


def test_deficits_are_restored_from_the_log_after_a_restart(bundle: ServingBundle, tmp_path: Path) -> None:
    before = _recommender(tmp_path)
    log = DurableLog(tmp_path / "logs", "impressions", fsync="always")
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        for n, user in enumerate(range(1, 40)):
            page = before.recommend(bundle, user, 10)
            log.append(
                ImpressionRecord(
                    request_id=f"r{n}",
                    position=p,
                    served_at=now,
                    user_id=user,
                    policy=page.policy,
                    item_id=int(bundle.item_ids[row]),
                    model_version=bundle.version,
                    propensity=float(q),
                )
                for p, (row, q) in enumerate(zip(page.rows.tolist(), page.propensities.tolist(), strict=True), 1)
            )
            before.record_served(bundle, page)
        # a holdout page and another version's page are in the log too: neither counts for v1's deficits
        log.append(
            [
                ImpressionRecord(
                    request_id="h",
                    position=1,
                    served_at=now,
                    user_id=1,
                    policy="holdout",
                    item_id=int(bundle.item_ids[0]),
                    model_version=bundle.version,
                )
            ]
        )
        log.append(
            [
                ImpressionRecord(
                    request_id="o",
                    position=1,
                    served_at=now,
                    user_id=1,
                    policy="personalized",
                    item_id=int(bundle.item_ids[0]),
                    model_version="v0",
                )
            ]
        )
    finally:
        log.close()
    after = _recommender(tmp_path)  # a new process: empty counters until the startup scan
    assert not after.tracker.exposure(bundle.version).any()
    restore_exposure(after.tracker, bundle, scan_impressions(tmp_path / "logs", 10))
    assert after.tracker.exposure(bundle.version) == pytest.approx(before.tracker.exposure(bundle.version))
    assert after.tracker.shown_creators(bundle.version) == before.tracker.shown_creators(bundle.version)
    assert after.tracker.exposure("v0").sum() == pytest.approx(1.0)
    assert after.fairness_targets(bundle).tolist() == before.fairness_targets(bundle).tolist()
    ranked = before.candidates(bundle, 50, bundle.user_row(50))
    assert [a.tolist() for a in before.rerank(bundle, *ranked, 10)] == [
        a.tolist() for a in after.rerank(bundle, *ranked, 10)
    ]


def test_propensities_stay_exact_with_the_control_on(bundle: ServingBundle, tmp_path: Path) -> None:
    rec = _recommender(tmp_path, STREAMREC_EPSILON="0.3", STREAMREC_EXPLORE_POOL="20", STREAMREC_FAIRNESS_CAP="0.3")
    present = np.flatnonzero(bundle.group_sizes)
    exposure = bundle.group_sizes.astype(float) * 50
    exposure[present[np.argsort(bundle.group_sizes[present])[:3]]] = 0.0  # three groups far behind
    rec.tracker.add(bundle.version, np.arange(N_GROUPS), exposure)
    user = 7
    ranked_rows, ranked_scores = rec.candidates(bundle, user, bundle.user_row(user))
    positions, reserved = rec.rerank(bundle, ranked_rows, ranked_scores, 10)
    assert reserved.sum() == 3
    draws = 6000
    counts: dict[tuple[int, int], int] = {}
    logged: dict[tuple[int, int], float] = {}
    for _ in range(draws):  # the counters are not fed, so every draw is of the same policy
        page = rec.page(bundle, ranked_rows, ranked_scores, 10)
        for slot, (row, propensity) in enumerate(zip(page.rows.tolist(), page.propensities.tolist(), strict=True)):
            counts[(row, slot)] = counts.get((row, slot), 0) + 1
            assert logged.setdefault((row, slot), propensity) == propensity  # a deterministic function of (i, j)
    for slot in np.flatnonzero(reserved).tolist():  # reserved slots: always the same item, propensity 1
        item = int(ranked_rows[positions[slot]])
        assert counts[(item, slot)] == draws and logged[(item, slot)] == 1.0
    for key, propensity in logged.items():  # free slots: observed frequency = logged marginal
        assert abs(counts[key] / draws - propensity) < 4 * math.sqrt(propensity * (1 - propensity) / draws) + 1e-9


def test_tradeoff_costs_get_paired_intervals_over_requests() -> None:
    from streamrec.lab.exposure_tradeoff import relative

    rng = np.random.default_rng(3)
    base = rng.random(400)  # a noisy per-request figure; the same requests at every cap
    names = ("ndcg_at_10", "hit_at_10", "true_engaged_per_page")

    def point(cap: float, values: np.ndarray) -> dict:
        return {"cap": cap, **{n: float(values.mean()) for n in names}, "_per_request": dict.fromkeys(names, values)}

    same, lower = point(0.5, base), point(0.7, base * 0.9)
    points = relative([point(0.0, base), same, lower])
    assert all("_per_request" not in p for p in points)
    # pairing: identical requests differ by nothing, a uniform 10% loss is exactly -10% whatever the noise
    assert same["ndcg_at_10_vs_no_control_ci"] == pytest.approx([0.0, 0.0])
    assert lower["hit_at_10_vs_no_control"] == pytest.approx(-0.1)
    assert lower["hit_at_10_vs_no_control_ci"] == pytest.approx([-0.1, -0.1])
    noisy = point(1.0, base * 0.9 + rng.normal(0, 0.2, 400))
    relative([point(0.0, base), noisy])
    low, high = noisy["ndcg_at_10_vs_no_control_ci"]
    assert low < noisy["ndcg_at_10_vs_no_control"] < high
    assert 0.01 < high - low < 0.2
