"""dbt's evaluation models on a real warehouse: metrics from ops.offline_* match an independent Python computation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from streamrec.batch.migrate import init_db
from streamrec.core.settings import DBT_PROJECT_DIR, PROFILES_DIR, Settings
from streamrec.core.warehouse import connect, fetchall

DBT = Path(sys.executable).with_name("dbt")
METRIC_COLUMNS = ("recall_at_500_ratio", "hit_at_10_ratio", "ndcg_at_10_score", "user_count")

pytestmark = pytest.mark.slow


def _dbt_build(settings: Settings, tmp_path: Path, select: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STREAMREC_WAREHOUSE"}
    env |= {
        "STREAMREC_HOME": str(settings.home),
        # own target/log dirs: other dbt runs in the same project must not share partial-parse state
        "DBT_TARGET_PATH": str(tmp_path / "dbt_target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt_logs"),
    }
    command = [str(DBT), "build", "--select", select, "--project-dir", str(DBT_PROJECT_DIR)]
    command += ["--profiles-dir", str(PROFILES_DIR)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def _offline_metrics(settings: Settings) -> dict[tuple[str, str], dict[str, float | None]]:
    with connect(settings, read_only=True) as con:
        rows = fetchall(
            con, f"select model_version, policy, {', '.join(METRIC_COLUMNS)} from evaluation.offline_metrics"
        )
    return {(r[0], r[1]): dict(zip(METRIC_COLUMNS, r[2:], strict=True)) for r in rows}


def _write_offline_rows(settings: Settings, recommendations: list[tuple], holdout: list[tuple]) -> None:
    recs = pa.table(
        {
            name: pa.array([r[i] for r in recommendations], type)
            for i, (name, type) in enumerate(
                [
                    ("version", pa.string()),
                    ("user_id", pa.int64()),
                    ("stage", pa.string()),
                    ("policy", pa.string()),
                    ("item_id", pa.int64()),
                    ("rank", pa.int32()),
                    ("score", pa.float64()),
                ]
            )
        }
    )
    truth = pa.table(
        {
            "version": pa.array([h[0] for h in holdout], pa.string()),
            "user_id": pa.array([h[1] for h in holdout], pa.int64()),
            "item_id": pa.array([h[2] for h in holdout], pa.int64()),
        }
    )
    with connect(settings) as con:
        con.register("recs_new", recs)
        con.register("holdout_new", truth)
        con.execute("insert into ops.offline_recommendations select * from recs_new")
        con.execute("insert into ops.offline_holdout select * from holdout_new")


def _synthetic_lists(seed: int) -> tuple[list[tuple], list[tuple]]:
    """Two versions x two policies; retrieval lists of 600 (so the 500 cut matters), ranking lists of 15."""
    rng = np.random.default_rng(seed)
    recommendations: list[tuple] = []
    holdout: list[tuple] = []
    catalogue = np.arange(10_000, 10_800)
    for version in ("v1", "v2"):
        for user in range(1, 41):
            positives = rng.choice(catalogue, size=int(rng.integers(1, 16)), replace=False)
            holdout += [(version, user, int(i)) for i in positives]
            for policy in ("model", "popularity"):
                if (user + len(policy)) % 9 == 0:
                    continue  # some users get no lists at all under a policy: they must still count, as 0
                retrieved = rng.permutation(catalogue)[:600]
                recommendations += [
                    (version, user, "retrieval", policy, int(i), rank, float(-rank))
                    for rank, i in enumerate(retrieved, start=1)
                ]
                if (user + len(policy)) % 7 == 0:
                    continue  # retrieval but no ranking list
                pool = np.concatenate([positives, rng.choice(catalogue, size=20, replace=False)])
                ranked = list(dict.fromkeys(rng.permutation(pool).tolist()))[:15]
                recommendations += [
                    (version, user, "ranking", policy, int(i), rank, float(-rank))
                    for rank, i in enumerate(ranked, start=1)
                ]
        # users outside the holdout are recommended to but not evaluated
        recommendations += [(version, 999, stage, "model", 10_000, 1, 0.0) for stage in ("retrieval", "ranking")]
    return recommendations, holdout


def _python_metrics(recommendations: list[tuple], holdout: list[tuple]) -> dict[tuple[str, str], dict[str, float]]:
    """The textbook definitions, computed per user in Python, averaged over each version's held-out users."""
    truth: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for version, user, item in holdout:
        truth[version][user].add(item)
    lists: dict[tuple[str, str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for version, user, stage, policy, item, rank, _ in recommendations:
        lists[version, policy, stage, user].append((rank, item))
    expected = {}
    for version, policy in sorted({(r[0], r[3]) for r in recommendations}):
        recall, hit, ndcg = [], [], []
        for user, positives in truth[version].items():
            retrieved = [i for _, i in sorted(lists.get((version, policy, "retrieval", user), []))][:500]
            ranked = [i for _, i in sorted(lists.get((version, policy, "ranking", user), []))][:10]
            recall.append(len(set(retrieved) & positives) / len(positives))
            hit.append(float(any(i in positives for i in ranked)))
            dcg = sum(1 / math.log2(p + 1) for p, i in enumerate(ranked, start=1) if i in positives)
            ideal = sum(1 / math.log2(p + 1) for p in range(1, min(10, len(positives)) + 1))
            ndcg.append(dcg / ideal)
        expected[version, policy] = {
            "recall_at_500_ratio": float(np.mean(recall)),
            "hit_at_10_ratio": float(np.mean(hit)),
            "ndcg_at_10_score": float(np.mean(ndcg)),
            "user_count": len(truth[version]),
        }
    return expected


def test_offline_metrics_match_python_and_handle_an_empty_registry(settings: Settings, tmp_path: Path) -> None:
    init_db(settings)
    # no versions yet: the models and their tests build, the metrics table is empty
    _dbt_build(settings, tmp_path, "+offline_metrics")
    assert _offline_metrics(settings) == {}

    recommendations, holdout = _synthetic_lists(seed=11)
    _write_offline_rows(settings, recommendations, holdout)
    _dbt_build(settings, tmp_path, "offline_metrics")

    actual = _offline_metrics(settings)
    expected = _python_metrics(recommendations, holdout)
    assert set(actual) == {("v1", "model"), ("v1", "popularity"), ("v2", "model"), ("v2", "popularity")}
    for key, metrics in expected.items():
        assert actual[key]["user_count"] == metrics["user_count"] == 40
        for column in METRIC_COLUMNS[:3]:
            assert actual[key][column] == pytest.approx(metrics[column], abs=1e-9), (key, column)
    # the data must exercise the cut-offs, or the comparison proves little
    assert 0 < expected["v1", "model"]["recall_at_500_ratio"] < 1
    assert 0 < expected["v1", "model"]["ndcg_at_10_score"] < expected["v1", "model"]["hit_at_10_ratio"] < 1
