"""`streamrec report` on a simulated, ingested and evaluated warehouse: the terminal scorecard, the simulation
check and a self-contained HTML file with every figure; a one-line error when evaluation was never built."""

from __future__ import annotations

import base64
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.batch.report import ORACLE_PAGES
from streamrec.core.settings import DBT_PROJECT_DIR, Settings
from streamrec.core.warehouse import connect, fetchall
from tests.integration.test_simulate import build_simulated_home

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FIGURES = ("exposure-share", "lorenz", "psi", "latency", "effects", "intersectional", "exposure-tradeoff")
THRESHOLDS = DBT_PROJECT_DIR / "seeds" / "evaluation" / "scorecard" / "evaluation_thresholds.csv"
IMG = re.compile(r"<img alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>")


def run_report(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`streamrec report` as a user runs it (wide terminal so rich does not wrap the table)."""
    env = {**os.environ, "STREAMREC_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "streamrec", "report", *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def report_home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the simulated home (the report writes reports/ into it)."""
    home, _ = build_simulated_home(built_home, tmp_path_factory)
    target = tmp_path_factory.mktemp("report") / "home"
    shutil.copytree(home, target)
    return target


def test_report_prints_every_metric_with_its_status_and_writes_the_html(report_home: Path) -> None:
    completed = run_report(report_home)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    with connect(Settings(home=report_home), read_only=True) as con:
        statuses = dict(fetchall(con, "select metric, status from evaluation.scorecard"))
        areas = dict(fetchall(con, "select metric, area from evaluation.scorecard"))
    metrics = [row["metric"] for row in csv.DictReader(THRESHOLDS.open())]
    assert sorted(statuses) == sorted(metrics)
    for metric in metrics:
        line = next(line for line in out.splitlines() if f" {metric} " in line)
        assert statuses[metric] in line  # the table row shows the scorecard's own status
    for status in ("PASS", "FAIL", "INCONCLUSIVE", "INSUFFICIENT_DATA"):
        assert f"{sum(s == status for s in statuses.values())} {status}" in out
    for metric, status in statuses.items():
        if status in ("FAIL", "INCONCLUSIVE"):  # the diagnosis is spelled out, with the metric's area
            assert any(line.startswith(f"{status} ({areas[metric]}) {metric}") for line in out.splitlines())
    default = report_home / "reports" / "report.html"
    assert f"HTML report: {default}" in out.replace("\n", "")
    assert default.is_file()


def test_html_is_self_contained_and_has_every_figure(report_home: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.html"
    completed = run_report(report_home, "--html", str(target))
    assert completed.returncode == 0, completed.stderr
    document = target.read_text()
    images = dict(IMG.findall(document))
    assert sorted(images) == sorted(FIGURES)
    for name, encoded in images.items():
        png = base64.b64decode(encoded)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, name
    assert "<script" not in document.lower()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", document)  # nothing fetched from elsewhere
    with connect(Settings(home=report_home), read_only=True) as con:
        metrics = [r[0] for r in fetchall(con, "select metric from evaluation.scorecard")]
    assert all(f"<td>{metric}</td>" in document for metric in metrics)


def test_simulation_check_compares_the_true_ate_with_the_sql_interval(report_home: Path) -> None:
    completed = run_report(report_home)
    assert completed.returncode == 0, completed.stderr
    with connect(Settings(home=report_home), read_only=True) as con:
        true_ate, low, high = fetchall(
            con,
            "select r.true_ate_engagement_rate, e.ci_low, e.ci_high from truth.simulation_runs r "
            "cross join evaluation.online_causal_effects e where e.estimate_name = 'ate_engagement_rate'",
        )[0]
    line = next(line for line in completed.stdout.splitlines() if "ate_engagement_rate" in line)
    expected = "COVERED" if low <= true_ate <= high else "NOT COVERED"
    assert line.rstrip(" │").endswith(expected)


def test_report_without_evaluation_names_the_command_to_run(generated_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(generated_home, home)
    completed = run_report(home)
    assert completed.returncode == 1
    assert "streamrec build --select evaluation" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert not (home / "reports").exists()


def test_simulation_check_is_not_comparable_when_the_run_served_another_version(
    report_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(report_home, home)
    with connect(Settings(home=home)) as con:
        con.execute(
            "insert into truth.simulation_runs (run_id, finished_at, model_versions, true_ate_engagement_rate, "
            "true_ate_watch_seconds) "
            "values ('sim-later', now()::timestamp + interval 1 hour, 'another-version', 0.5, 1.0)"
        )
    completed = run_report(home)
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stdout.splitlines() if line.startswith("│ ate_")]
    assert len(lines) == 2 and all("NOT COMPARABLE" in line for line in lines)
    assert "another-version" in completed.stdout


def test_report_shows_the_oracle_against_the_served_and_holdout_pages(report_home: Path, tmp_path: Path) -> None:
    target = tmp_path / "oracle.html"
    completed = run_report(report_home, "--html", str(target))
    assert completed.returncode == 0, completed.stderr
    with connect(Settings(home=report_home), read_only=True) as con:
        share, oracle, personalised, holdout = fetchall(
            con,
            "select oracle_lift_share_ratio, oracle_engaged_slots_per_page, personalized_engaged_slots_per_page, "
            "holdout_engaged_slots_per_page from evaluation.simulation_oracle_lift where is_latest_run",
        )[0]
    out = completed.stdout
    assert "Against the best possible page" in out
    assert f"captured {share:.1%} of the oracle's lift over popularity" in out
    rows = {prefix: next(line for line in out.splitlines() if label in line) for label, prefix in ORACLE_PAGES}
    assert f"{oracle:.2f}" in rows["oracle"] and f"{holdout:.2f}" in rows["holdout"]
    assert f"{personalised:.2f}" in rows["personalized"]
    document = target.read_text()
    assert "<h2 id='oracle'>" in document and f"captured {share:.1%}" in document
