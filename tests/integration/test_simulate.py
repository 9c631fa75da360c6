"""The closed-loop simulator against a real `streamrec serve` on loopback: events posted and logged, truth written,
and the truth checked independently against the logged impressions and the SQL estimate."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamrec.batch.build import dbt_command
from streamrec.batch.ingest import ingest_logs
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, scalar
from streamrec.lab.simulate import SimulationSummary, simulate
from streamrec.lab.truth import load_truth
from tests.conftest import build_once
from tests.e2e.conftest import ApiServer

SIM_VERSION = "sim-v1"
SIM_REQUESTS = 300
SIM_SEED = 5
# Half the users in the holdout so both arms have enough users for an interval on a 300-user warehouse.
SERVER_ENV = {"STREAMREC_HOLDOUT_SHARE": "0.5", "STREAMREC_SEED": "5"}


def build_simulated_home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Train + promote a small bundle, serve it, simulate, ingest, build evaluation (thresholds as warnings).

    Made once per test run (tests/conftest.py build_once), so the test modules that need it (simulate, report,
    client, dbt ecosystem, Chromium), on whichever xdist worker, pay for the pipeline once. Do not modify the
    returned home: copy it.
    """

    def make(root: Path) -> None:
        _simulate_into(built_home, root / "home", root / "summary.json")

    root = build_once(tmp_path_factory, "simulated-pipeline", make)
    return root / "home", json.loads((root / "summary.json").read_text())


def _simulate_into(built_home: Path, home: Path, marker: Path) -> None:
    """build_simulated_home's pipeline, run once: the home, and the simulation's summary in `marker`."""
    from streamrec.models_ml.registry import promote
    from streamrec.models_ml.train import train

    shutil.copytree(built_home, home)
    settings = Settings(home=home)
    train(settings, epochs=1, seed=3, version=SIM_VERSION)
    promote(settings, version=SIM_VERSION, by="tests", reason="simulation fixture")
    server = ApiServer(home, env=SERVER_ENV).start()
    try:
        summary = simulate(settings, url=server.url, requests=SIM_REQUESTS, seed=SIM_SEED)
    finally:
        server.stop()
    ingest_logs(settings)
    env = {**os.environ, "STREAMREC_HOME": str(home), "STREAMREC_WAREHOUSE": str(settings.warehouse_path)}
    args = ["build", "--vars", json.dumps({"evaluation_threshold_severity": "warn"})]
    built = subprocess.run(
        dbt_command(settings, args, select="evaluation"), env=env, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stdout[-4000:]
    record = {
        "run_id": summary.run_id,
        "requests": summary.requests,
        "events_posted": summary.events_posted,
        "organic_events": summary.organic_events,
        "arm_users": summary.arm_users,
        "true_ate_engagement_rate": summary.true_ate_engagement_rate,
        "true_ate_watch_seconds": summary.true_ate_watch_seconds,
        "text": str(summary),
    }
    marker.write_text(json.dumps(record))


pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="session")
def simulated(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    """(settings, summary) of the simulated, ingested and evaluated home (read-only)."""
    home, summary = build_simulated_home(built_home, tmp_path_factory)
    return Settings(home=home), summary


def test_simulation_posts_events_and_the_api_logs_them(simulated: tuple[Settings, dict]) -> None:
    settings, summary = simulated
    assert summary["requests"] == SIM_REQUESTS
    assert summary["arm_users"].get("personalized", 0) > 0 and summary["arm_users"].get("holdout", 0) > 0
    assert summary["events_posted"] > 0 and summary["organic_events"] > 0
    with connect(settings, read_only=True) as con:
        served = {r[0] for r in fetchall(con, "select distinct request_id from ops.impressions")}
        recorded = {
            r[0]
            for r in fetchall(
                con, "select request_id from truth.simulation_requests where run_id = ?", [summary["run_id"]]
            )
        }
        attributed = scalar(con, "select count(*) from ops.events where request_id is not null")
        organic = scalar(con, "select count(*) from ops.events where request_id is null")
        plays = scalar(con, "select count(*) from ops.events where request_id is not null and event_type = 'play'")
        engaged = scalar(
            con, "select sum(engaged_slots) from truth.simulation_requests where run_id = ?", [summary["run_id"]]
        )
        stray = scalar(
            con,
            "select count(*) from ops.events e where e.request_id is not null and not exists "
            "(select 1 from ops.impressions i where i.request_id = e.request_id and i.item_id = e.item_id)",
        )
    assert served == recorded and len(served) == SIM_REQUESTS  # every request the simulator made was logged
    assert attributed == summary["events_posted"]  # every posted event reached the warehouse, once
    assert organic == summary["organic_events"]
    assert plays == engaged  # one play per engaged slot
    assert stray == 0  # every attributed event answers a served slot


def test_truth_matches_an_independent_computation_from_the_logged_impressions(
    simulated: tuple[Settings, dict],
) -> None:
    settings, summary = simulated
    with connect(settings, read_only=True) as con:
        truth = load_truth(con)
        slots = fetchall(
            con, "select user_id, policy, item_id, position from ops.impressions order by request_id, position"
        )
        outcomes = fetchall(
            con,
            "select user_id, arm, expected_engagement_personalized, expected_engagement_holdout "
            "from truth.simulation_outcomes where run_id = ?",
            [summary["run_id"]],
        )
        run_ate = scalar(
            con, "select true_ate_engagement_rate from truth.simulation_runs where run_id = ?", [summary["run_id"]]
        )
    users = np.array([s[0] for s in slots], dtype=np.int64)
    probability = truth.engagement_probability(
        users, np.array([s[2] for s in slots], dtype=np.int64), np.array([s[3] for s in slots], dtype=np.float64)
    )
    served_rate: dict[tuple[int, str], list[float]] = {}
    for (user, policy, _, _), p in zip(slots, probability, strict=True):
        served_rate.setdefault((user, policy), []).append(float(p))
    assert len(outcomes) == len(served_rate)
    for user, arm, personalised, holdout in outcomes:
        expected_served = float(np.mean(served_rate[(user, arm)]))
        observed = personalised if arm == "personalized" else holdout
        assert observed == pytest.approx(expected_served, abs=1e-9)  # the served arm's truth is the logged lists'
        assert 0.0 <= personalised <= 1.0 and 0.0 <= holdout <= 1.0
    differences = [p - h for _, arm, p, h in outcomes if arm in ("personalized", "holdout")]
    assert math.isfinite(run_ate) and run_ate == pytest.approx(float(np.mean(differences)), abs=1e-12)


def test_realised_engagement_agrees_with_the_expected_engagement(simulated: tuple[Settings, dict]) -> None:
    settings, summary = simulated
    with connect(settings, read_only=True) as con:
        rows = fetchall(
            con,
            "select r.request_id, r.user_id, r.engaged_slots, r.expected_engaged_slots_served "
            "from truth.simulation_requests r where run_id = ?",
            [summary["run_id"]],
        )
        slots = fetchall(con, "select user_id, item_id, position from ops.impressions")
        truth = load_truth(con)
    p = truth.engagement_probability(
        np.array([s[0] for s in slots]), np.array([s[1] for s in slots]), np.array([s[2] for s in slots], float)
    )
    realised = sum(r[2] for r in rows)
    expected = sum(r[3] for r in rows)
    assert expected == pytest.approx(float(p.sum()), rel=1e-9)
    # Bernoulli slots: the realised count is within 4 standard deviations of its expectation (p < 1e-4 to fail)
    assert abs(realised - expected) <= 4.0 * math.sqrt(float((p * (1 - p)).sum()))


def test_sql_estimate_agrees_with_the_true_ate(simulated: tuple[Settings, dict]) -> None:
    settings, summary = simulated
    with connect(settings, read_only=True) as con:
        effects = dict(
            (r[0], r[1:])
            for r in fetchall(
                con,
                "select estimate_name, effect, ci_low, ci_high, treated_count, control_count "
                "from evaluation.online_causal_effects where model_version = ?",
                [SIM_VERSION],
            )
        )
    for name, key in (
        ("ate_engagement_rate", "true_ate_engagement_rate"),
        ("ate_watch_seconds", "true_ate_watch_seconds"),
    ):
        effect, low, high, treated, control = effects[name]
        standard_error = (high - low) / (2 * 1.959964)
        assert treated > 10 and control > 10
        # a correct, unbiased estimate is this far from the truth with probability < 0.1% (a 95% CI misses 5%)
        assert abs(effect - summary[key]) <= 3.3 * standard_error, (name, effect, low, high, summary[key])


def test_oracle_page_is_valued_from_the_truth_and_bounds_every_served_page(simulated: tuple[Settings, dict]) -> None:
    settings, summary = simulated
    with connect(settings, read_only=True) as con:
        truth = load_truth(con)
        requests = fetchall(
            con,
            "select user_id, slots, expected_engaged_slots_served, expected_engaged_slots_counterfactual, "
            "expected_engaged_slots_oracle from truth.simulation_requests where run_id = ?",
            [summary["run_id"]],
        )
        oracle = dict(
            zip(
                [d[0] for d in con.execute("select * from truth.simulation_oracle limit 0").description],
                fetchall(con, "select * from truth.simulation_oracle where run_id = ?", [summary["run_id"]])[0],
                strict=True,
            )
        )
        outcomes = fetchall(
            con,
            "select arm, expected_engagement_personalized, expected_engagement_holdout, expected_engagement_oracle "
            "from truth.simulation_outcomes where run_id = ? and arm in ('personalized', 'holdout')",
            [summary["run_id"]],
        )
        lifted = fetchall(
            con,
            "select oracle_lift_share_ratio, oracle_engaged_slots_per_page, is_latest_run "
            "from evaluation.simulation_oracle_lift where simulation_run_id = ?",
            [summary["run_id"]],
        )
        catalogue = np.array([r[0] for r in fetchall(con, "select item_id from raw.items")], dtype=np.int64)
    # independently: the best page of k servable items is the k most relevant in relevance order
    user, slots, served, _, oracle_value = requests[0]
    relevance = np.sort(truth.relevance(np.full(catalogue.size, user, dtype=np.int64), catalogue))[::-1][:slots]
    exam = truth.examination_probability(np.arange(1, slots + 1, dtype=np.float64), slots)
    assert oracle_value == pytest.approx(float((exam * relevance).sum()), rel=1e-9)
    for _, _, served, other, best in requests:  # no page the API or its counterfactual served beats it
        assert served <= best + 1e-9 and (other is None or other <= best + 1e-9)
    personalised = float(np.mean([o[1] for o in outcomes]))
    holdout = float(np.mean([o[2] for o in outcomes]))
    best = float(np.mean([o[3] for o in outcomes]))
    share = (personalised - holdout) / (best - holdout)
    assert oracle["causal_users"] == len(outcomes)
    assert oracle["oracle_share_engagement"] == pytest.approx(share, rel=1e-9)
    assert oracle["engagement_rate_personalized"] - oracle["engagement_rate_holdout"] == pytest.approx(
        summary["true_ate_engagement_rate"], abs=1e-12
    )  # the share's numerator is the true ATE
    assert share < 1.0 and best > holdout
    assert lifted == [(pytest.approx(share, rel=1e-9), pytest.approx(oracle["engaged_slots_per_page_oracle"]), True)]
    assert "share of the oracle's lift" in summary["text"]


def test_simulator_refuses_a_non_loopback_url_before_anything(settings: Settings) -> None:
    with pytest.raises(StreamRecError, match="loopback"):
        simulate(settings, url="http://example.com:8000", requests=10)
    with pytest.raises(StreamRecError, match="requests"):
        simulate(settings, url="http://127.0.0.1:9", requests=0)


def test_summary_names_the_next_steps() -> None:
    summary = SimulationSummary("sim-x", 10, 5, {"personalized": 4, "holdout": 1}, 20, 3, ("v1",), 0.05, 12.0, 1.0)
    text = str(summary)
    assert "sim-x" in text and "+0.0500" in text and "streamrec ingest" in text
