"""Off-policy estimates in SQL (dbt model ope_estimates) on synthetic logs whose true value is known exactly,
and the Open Bandit Dataset import writing raw.ope_logged atomically."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.batch.bandit_import import load_obd
from streamrec.batch.migrate import init_db
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import DBT_PROJECT_DIR, PROFILES_DIR, Settings
from streamrec.core.warehouse import connect, fetchall
from streamrec.lab.ope_synthetic import make_synthetic_logs, write_synthetic_logs

DBT = Path(sys.executable).with_name("dbt")
OBD_HEADER = ",timestamp,item_id,position,click,propensity_score,user_feature_0,user-item_affinity_0"


def _dbt_build(settings: Settings, tmp_path: Path, select: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STREAMREC_WAREHOUSE"}
    env |= {
        "STREAMREC_HOME": str(settings.home),
        "DBT_TARGET_PATH": str(tmp_path / "dbt_target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt_logs"),
    }
    command = [str(DBT), "build", "--select", select, "--project-dir", str(DBT_PROJECT_DIR)]
    command += ["--profiles-dir", str(PROFILES_DIR)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]


def _estimates(settings: Settings) -> dict[tuple[str, str], dict[str, float]]:
    with connect(settings, read_only=True) as con:
        rows = fetchall(
            con,
            "select dataset, estimator, estimate, ci_low, ci_high, round_count from evaluation.ope_estimates",
        )
    return {(r[0], r[1]): {"estimate": r[2], "ci_low": r[3], "ci_high": r[4], "n": r[5]} for r in rows}


@pytest.mark.slow
def test_ips_snips_and_dr_recover_the_known_value_of_a_candidate_policy(settings: Settings, tmp_path: Path) -> None:
    init_db(settings)
    # no OPE tables yet: the models build and are empty
    _dbt_build(settings, tmp_path, "+ope_estimates")
    assert _estimates(settings) == {}

    logs = make_synthetic_logs(n_rounds=20_000, seed=3)
    write_synthetic_logs(settings, logs)
    _dbt_build(settings, tmp_path, "+ope_estimates")
    estimates = _estimates(settings)

    truth = logs.true_value
    # the policies differ enough that reading the log naively is wrong: its interval excludes the truth
    naive = estimates["synthetic", "logged_mean"]
    assert naive["estimate"] == pytest.approx(logs.logging_value, abs=0.01)
    assert not naive["ci_low"] <= truth <= naive["ci_high"], (naive, truth)
    assert abs(naive["estimate"] - truth) > 0.03
    for estimator in ("ips", "snips", "dr"):
        row = estimates["synthetic", estimator]
        assert row["n"] == 20_000
        assert row["ci_low"] <= truth <= row["ci_high"], (estimator, row, truth)
        assert row["estimate"] == pytest.approx(truth, abs=0.02), estimator
        # a 95% interval from 20k rounds is narrow; a degenerate (huge) one would cover anything
        assert row["ci_high"] - row["ci_low"] < 0.05, estimator


def _write_obd(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([OBD_HEADER, *rows]) + "\n")
    return path


def test_obd_import_replaces_a_dataset_and_refuses_bad_files_without_writing(
    settings: Settings, tmp_path: Path
) -> None:
    init_db(settings)
    good = _write_obd(
        tmp_path / "all.csv",
        [
            "0,2019-11-24 00:00:17.318039+00:00,14,3,0,0.0125,81ce,0.0",
            "1,2019-11-24 00:00:17.318039+00:00,75,2,1,0.0125,81ce,1.0",
            "2,2019-11-24 00:00:20.000000+00:00,22,1,0,0.0125,8c3e,0.0",
        ],
    )
    summary = load_obd(settings, good, dataset="obd_test")
    assert "3 rounds" in summary
    # a second import of the same dataset replaces it, it does not duplicate rows
    load_obd(settings, good, dataset="obd_test")

    bad = _write_obd(tmp_path / "bad.csv", ["0,2019-11-24 00:00:17+00:00,14,3,0,0.0,81ce,0.0"])
    with pytest.raises(StreamRecError, match=r"bad.csv row 2, column 'propensity_score'"):
        load_obd(settings, bad, dataset="obd_test")

    with connect(settings, read_only=True) as con:
        rows = fetchall(
            con, "select request_id, position, item_id, propensity, reward, logged_at from raw.ope_logged order by 1"
        )
    assert [(r[1], r[2], r[4]) for r in rows] == [(3, 14, 0.0), (2, 75, 1.0), (1, 22, 0.0)]
    assert {r[3] for r in rows} == {0.0125}
    assert str(rows[0][5]) == "2019-11-24 00:00:17.318039"
