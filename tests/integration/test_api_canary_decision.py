"""`streamrec canary advance`'s decision: SQL over ops.impressions / ops.events per bundle version."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from streamrec.batch.canary_decision import Thresholds, decide
from streamrec.batch.gate import Verdict, judge
from streamrec.core.warehouse import connect

T0 = datetime(2026, 1, 1)


def _serve(con, version: str, requests: int, clicks: int, latency_ms: float, phase: str = "phase1") -> None:
    """`requests` pages of 10 impressions; the first `clicks` requests get one click; latency varies by 0-2 ms."""
    con.execute(
        "insert into ops.impressions (request_id, position, served_at, user_id, item_id, creator_id, score,"
        " propensity, policy, model_version, canary_phase, latency_ms)"
        " select ? || '-' || r::varchar, p, ?::timestamp + to_seconds(r), r, p, 1, 0.5, 0.9, 'personalized', ?, ?,"
        " ? + r % 3 from range(?) t(r) cross join range(1, 11) s(p)",
        [version, T0, version, phase, latency_ms, requests],
    )
    con.execute(
        "insert into ops.events (event_id, request_id, user_id, item_id, event_type, watch_seconds, event_ts,"
        " received_at) select 'e-' || ? || '-' || r::varchar, ? || '-' || r::varchar, r, 1, 'click', 0, ?, ?"
        " from range(?) t(r)",
        [version, version, T0, T0, clicks],
    )


def test_phase1_judges_ctr_and_latency_by_their_intervals(generated_home: Path, copy_home) -> None:
    settings = copy_home(generated_home)
    with connect(settings) as con:
        _serve(con, "v1", requests=4000, clicks=2000, latency_ms=10)  # 40,000 impressions, CTR 0.05
        _serve(con, "v2", requests=4000, clicks=2020, latency_ms=11)  # same CTR within +-0.003, p99 13 vs 12 ms
        _serve(con, "v3", requests=4000, clicks=200, latency_ms=30)  # worse CTR and latency, clearly
        _serve(con, "v4", requests=60, clicks=31, latency_ms=10)  # 600 impressions: CTR interval +-0.025
        _serve(con, "v5", requests=20, clicks=10, latency_ms=10)  # too little traffic
    thresholds = Thresholds(min_impressions=500)
    good = decide(settings, 1, "v1", "v2", thresholds)
    assert good.advance and good.status == "PASS", good.reasons
    assert (good.control.impressions, good.control.engaged, good.control.requests) == (40000, 2000, 4000)
    assert abs(good.candidate.ctr - 2020 / 40000) < 1e-12 and good.candidate.p99_latency_ms == 13
    assert good.control.p99_ci_ms == (12, 12)
    bad = decide(settings, 1, "v1", "v3", thresholds)
    assert not bad.advance and bad.status == "FAIL"
    assert any(r.startswith("FAIL: CTR") for r in bad.reasons) and any(r.startswith("FAIL: p99") for r in bad.reasons)
    # The point estimate (+0.0017) is above the bound (-0.01), but the interval straddles it: wait, saying how long.
    unsure = decide(settings, 1, "v1", "v4", thresholds)
    assert not unsure.advance and unsure.status == "INCONCLUSIVE"
    assert unsure.verdicts["CTR"].status == "INCONCLUSIVE" and unsure.verdicts["CTR"].samples_to_decide > 0
    assert any(
        r.startswith("wait (INCONCLUSIVE): CTR difference") and "more impressions per arm" in r for r in unsure.reasons
    )
    wait = decide(settings, 1, "v1", "v5", thresholds)
    assert not wait.advance and wait.reasons[0].startswith("wait: candidate has 200 impressions")
    phase2 = decide(settings, 2, "v1", "v2", Thresholds(min_impressions=1))
    assert not phase2.advance  # nothing was served in phase 2 yet


def test_the_canary_and_the_scorecard_share_one_rule() -> None:
    # constructed intervals against a '>=' threshold of 0.01 and a '<=' threshold of 200
    assert judge(0.02, 0.012, 0.028, 0.01, ">=", 500, 100) == Verdict("PASS")
    assert judge(0.004, -0.002, 0.009, 0.01, ">=", 500, 100) == Verdict("FAIL")
    unsure = judge(0.0128, 0.0003, 0.0254, 0.01, ">=", 300, 100)  # the causal row: PASS by its point
    assert unsure.status == "INCONCLUSIVE"
    # half-width on the threshold's side 0.0125, gap 0.0028: n * (0.0125 / 0.0028)^2 - n more users
    assert unsure.samples_to_decide == math.ceil(300 * (0.0125 / 0.0028) ** 2) - 300
    assert judge(150.0, 120.0, 190.0, 200, "<=", 1000, 100).status == "PASS"
    assert judge(260.0, 210.0, 300.0, 200, "<=", 1000, 100).status == "FAIL"
    assert judge(190.0, 170.0, 230.0, 200, "<=", 1000, 100).status == "INCONCLUSIVE"
    assert judge(0.5, 0.4, 0.6, 0.01, ">=", 50, 100).status == "INSUFFICIENT_DATA"
    assert judge(0.5, None, None, 0.01, ">=", 500, 100).status == "INCONCLUSIVE"
    assert judge(0.01, 0.0, 0.02, 0.01, ">=", 500, 100) == Verdict("INCONCLUSIVE", None)  # on the threshold
