"""`streamrec canary advance`'s decision: SQL over ops.impressions / ops.events per bundle version."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from streamrec.batch.canary_decision import Thresholds, decide
from streamrec.core.warehouse import connect

T0 = datetime(2026, 1, 1)


def _serve(con, version: str, requests: int, clicks: int, latency_ms: float, phase: str = "phase1") -> None:
    for r in range(requests):
        request_id = f"{version}-{r}"
        for position in range(1, 11):
            con.execute(
                "insert into ops.impressions (request_id, position, served_at, user_id, item_id, creator_id, score,"
                " propensity, policy, model_version, canary_phase, latency_ms)"
                " values (?, ?, ?, ?, ?, 1, 0.5, 0.9, 'personalized', ?, ?, ?)",
                [request_id, position, T0 + timedelta(seconds=r), r, position, version, phase, latency_ms + r % 3],
            )
        if r < clicks:
            con.execute(
                "insert into ops.events (event_id, request_id, user_id, item_id, event_type, watch_seconds, event_ts,"
                " received_at) values (?, ?, ?, 1, 'click', 0, ?, ?)",
                [f"e-{request_id}", request_id, r, T0, T0],
            )


def test_phase1_compares_ctr_and_latency_per_version(generated_home: Path, copy_home) -> None:
    settings = copy_home(generated_home)
    with connect(settings) as con:
        _serve(con, "v1", requests=60, clicks=30, latency_ms=10)  # 600 impressions, CTR 0.05
        _serve(con, "v2", requests=60, clicks=31, latency_ms=11)
        _serve(con, "v3", requests=60, clicks=5, latency_ms=30)  # worse CTR and latency
        _serve(con, "v4", requests=20, clicks=10, latency_ms=10)  # too little traffic
    good = decide(settings, 1, "v1", "v2", Thresholds(min_impressions=500))
    assert good.advance, good.reasons
    assert (good.control.impressions, good.control.engaged, good.control.requests) == (600, 30, 60)
    assert abs(good.candidate.ctr - 31 / 600) < 1e-12 and good.candidate.p99_latency_ms <= 13
    bad = decide(settings, 1, "v1", "v3", Thresholds(min_impressions=500))
    assert not bad.advance and any("CTR" in r for r in bad.reasons) and any("p99" in r for r in bad.reasons)
    wait = decide(settings, 1, "v1", "v4", Thresholds(min_impressions=500))
    assert not wait.advance and wait.reasons[0].startswith("wait: candidate has 200 impressions")
    phase2 = decide(settings, 2, "v1", "v2", Thresholds(min_impressions=1))
    assert not phase2.advance  # nothing was served in phase 2 yet
