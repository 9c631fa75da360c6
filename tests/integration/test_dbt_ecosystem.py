"""dbt conventions on the real project: source freshness (run by `streamrec build`), exposures, docs blocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.batch.build import dbt_command
from streamrec.contracts.render import feature_doc
from streamrec.contracts.schema import load_contract
from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def manifest(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("parse") / "home"
    shutil.copytree(built_home, home)
    settings = Settings(home=home)
    env = {**os.environ, "STREAMREC_HOME": str(home), "STREAMREC_WAREHOUSE": str(settings.warehouse_path)}
    done = subprocess.run(dbt_command(settings, ["parse"]), env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    target = Path(dbt_command(settings, ["parse"])[dbt_command(settings, ["parse"]).index("--target-path") + 1])
    return json.loads((target / "manifest.json").read_text())


def test_sources_with_a_timestamp_declare_freshness(manifest: dict) -> None:
    sources = {f"{s['source_name']}.{s['name']}": s for s in manifest["sources"].values()}
    assert len(sources) == 17  # raw 5, ops 8, ope 2 (optional), truth 2 (simulations only)
    timed = {
        "raw.users": "signup_ts",
        "raw.items": "published_ts",
        "raw.sessions": "started_ts",
        "raw.interactions": "event_ts",
        "ops.model_versions": "created_at",
        "ops.promotions": "promoted_at",
        "ops.impressions": "served_at",
        "ops.events": "received_at",
        "ops.raw_loads": "loaded_at",
    }
    for name, field in timed.items():
        source = sources[name]
        assert source["loaded_at_field"] == field, name
        assert (source["freshness"] or {}).get("warn_after", {}).get("count"), name
    assert sources["ops.events"]["freshness"]["error_after"] == {"count": 7, "period": "day"}
    for name in set(sources) - set(timed):  # no timestamp: freshness declared off, not forgotten
        assert not (sources[name]["freshness"] or {}).get("warn_after", {}).get("count"), name


def test_exposures_for_the_api_and_the_report(manifest: dict) -> None:
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    api, report = exposures["serving_api"], exposures["release_report"]
    assert api["type"] == "application" and report["type"] == "dashboard"
    assert {"model.streamrec.user_features", "model.streamrec.item_features"} <= set(api["depends_on"]["nodes"])
    assert "model.streamrec.scorecard" in report["depends_on"]["nodes"]


def test_feature_columns_are_described_by_docs_blocks_from_the_contract(manifest: dict, built_home: Path) -> None:
    contract = load_contract()
    docs = {d["name"]: d["block_contents"] for d in manifest["docs"].values()}
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    for feature in contract.features:
        assert docs[feature.name] == feature_doc(feature)
        model = models[contract.entities[feature.entity].model]
        assert model["columns"][feature.name]["description"] == feature_doc(feature)
        assert models["training_examples"]["columns"][feature.name]["description"] == feature_doc(feature)
    # every column the warehouse holds for these models is described
    with open_warehouse(Settings(home=built_home), read_only=True) as con:
        for name in ("user_features", "item_features", "training_examples"):
            columns = [r[0] for r in con.execute(f"select * from features.{name} limit 0").description]
            undescribed = [c for c in columns if not models[name]["columns"].get(c, {}).get("description")]
            assert not undescribed, (name, undescribed)


def test_streamrec_build_reports_source_freshness(built_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    env = {**os.environ, "STREAMREC_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "streamrec", "build", "--select", "stg_raw__users"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("source freshness:"))
    # the synthetic data ends in 2025: its raw tables warn, naming the age of their newest row
    assert "warn: " in line and "raw.interactions (newest 2025-" in line and "days old" in line
    assert (home / "dbt" / "sources.json").is_file()
    quiet = subprocess.run(
        [sys.executable, "-m", "streamrec", "build", "--select", "stg_raw__users", "--no-freshness"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert quiet.returncode == 0 and "source freshness:" not in quiet.stdout


def test_plain_dbt_build_warns_on_thresholds_that_streamrec_build_fails(
    built_home: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.integration.test_dbt_build import _dbt
    from tests.integration.test_simulate import build_simulated_home
    from tests.paths import REPO_ROOT

    simulated, _ = build_simulated_home(built_home, tmp_path_factory)
    home = tmp_path / "home"
    shutil.copytree(simulated, home)
    with open_warehouse(Settings(home=home), read_only=True) as con:
        failing = [
            r[0] for r in con.execute("select metric from evaluation.scorecard where status = 'FAIL'").fetchall()
        ]
    assert failing, "the simulated home is expected to fail at least one threshold"
    # The README's command, from the repository root, on the published warehouse of this home.
    plain = _dbt(["build", "--select", "scorecard+"], Path("dbt_project"), home, cwd=REPO_ROOT)
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert "WARN" in plain.stdout and f"threshold_met_{failing[0]}" in plain.stdout
    strict = subprocess.run(
        [sys.executable, "-m", "streamrec", "build", "--select", "scorecard+", "--no-freshness"],
        env={**os.environ, "STREAMREC_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert strict.returncode == 1 and "scorecard threshold(s) failed" in strict.stderr
