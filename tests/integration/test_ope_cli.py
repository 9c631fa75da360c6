"""`streamrec ope --logs obd --target uniform|FILE.csv` on a warehouse that holds nothing but imported logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.batch.ope_run import run_ope
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

pytestmark = [pytest.mark.slow]
HEADER = ",timestamp,item_id,position,click,propensity_score"
ROUNDS = 240


def _rounds() -> list[tuple[int, int, int]]:
    """(item, position, click) per round: uniform logging over items 1..4 at each of 3 positions."""
    out = []
    for i in range(ROUNDS):
        item, position = 1 + (i // 3) % 4, 1 + i % 3
        click = 1 if (item == 1 and position == 1) or i % 7 == 0 else 0
        out.append((item, position, click))
    return out


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "STREAMREC_HOME": str(home), "COLUMNS": "160"}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamrec", *args], env=_env(home), capture_output=True, text=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ope_cli") / "home"
    assert _cli(home, "init").returncode == 0
    csv = home.parent / "all.csv"
    lines = [HEADER] + [
        f"{i},2019-11-24 00:00:{i % 60:02d}+00:00,{item},{position},{click},0.25"
        for i, (item, position, click) in enumerate(_rounds())
    ]
    csv.write_text("\n".join(lines) + "\n")
    loaded = _cli(home, "load", "obd", str(csv), "--dataset", "toy")
    assert loaded.returncode == 0, loaded.stderr
    assert "streamrec ope --logs obd --dataset toy --target uniform" in loaded.stdout  # the hint that works
    return home


def test_uniform_target_on_uniform_logs_estimates_the_logged_mean(home: Path) -> None:
    done = _cli(home, "ope", "--logs", "obd", "--target", "uniform")
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    mean = sum(c for _, _, c in _rounds()) / ROUNDS
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│")}
    for estimator in ("ips", "snips", "dr", "dm", "logged_mean"):
        assert estimator in lines, done.stdout
    # every weight is (1/4) / 0.25 = 1: IPS and SNIPS are exactly the logged mean
    assert f"{mean:.4f}" in lines["ips"] and f"{mean:.4f}" in lines["snips"]
    assert "[" in lines["ips"] and "target 'uniform' on dataset 'toy'" in done.stdout


def test_a_target_csv_is_estimated(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "always_item_1.csv"
    rows = ["request_id,position,item_id,probability"]
    rows += [f"toy-{i + 2},{position},1,1.0" for i, (_, position, _) in enumerate(_rounds())]
    target.write_text("\n".join(rows) + "\n")
    estimates = {e["estimator"]: e for e in run_ope(Settings(home=home), logs="obd", target=str(target))}
    expected = sum(4.0 * c for item, _, c in _rounds() if item == 1) / ROUNDS
    assert estimates["ips"]["estimate"] == pytest.approx(expected, abs=1e-9)
    assert estimates["ips"]["target_policy"] == "always_item_1"
    assert estimates["ips"]["ci_low"] < expected < estimates["ips"]["ci_high"]


def test_bad_targets_are_one_error_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,position,item_id,probability\ntoy-2,1,1,0.7\ntoy-2,1,2,0.6\n")
    done = _cli(home, "ope", "--logs", "obd", "--target", str(bad))
    assert done.returncode == 1 and "sum to 1.300000 > 1" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(StreamRecError, match="expected obd or ops"):
        run_ope(Settings(home=home), logs="web", target="uniform")
    with pytest.raises(StreamRecError, match="no dataset 'nope'"):
        run_ope(Settings(home=home), logs="obd", target="uniform", dataset="nope")
