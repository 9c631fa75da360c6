"""A real `dbt build` of the feature warehouse on the small generated data: tables, contract, publishing."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from streamrec.batch.build import build, building_path, parse_as_of
from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import DBT_PROJECT_DIR, PROFILES_DIR, Settings
from streamrec.core.warehouse import open_warehouse
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def _query(path: Path, sql: str) -> list[tuple]:
    con = open_warehouse(Settings(home=path.parent), read_only=True)  # raw attached
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dbt(args: list[str], project_dir: Path, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run dbt like a user would (no STREAMREC_WAREHOUSE: the profile follows STREAMREC_HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "STREAMREC_WAREHOUSE"}
    env["STREAMREC_HOME"] = str(home)
    command = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", *args]
    command += ["--project-dir", str(project_dir), "--profiles-dir", str(PROFILES_DIR)]
    command += ["--target-path", str(home / "dbt" / "test-target"), "--log-path", str(home / "dbt" / "test-logs")]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)


def test_feature_tables_have_every_contract_feature_with_its_type(built_home: Path) -> None:
    contract = load_contract()
    warehouse = Settings(home=built_home).warehouse_path
    types = {"double": "DOUBLE", "bigint": "BIGINT", "string": "VARCHAR", "boolean": "BOOLEAN"}
    total = 0
    for entity in contract.entities.values():
        columns = dict(
            _query(
                warehouse,
                "select column_name, data_type from information_schema.columns "
                f"where table_schema = 'features' and table_name = '{entity.model}'",
            )
        )
        features = contract.for_entity(entity.name)
        assert set(columns) == set(entity.keys) | {f.name for f in features}
        for feature in features:
            assert columns[feature.name] == types[feature.dbt_data_type], feature.name
        total += len(features)
        rows = _query(warehouse, f"select count(*) from features.{entity.model}")[0][0]
        grid = [r[0] for r in _query(warehouse, f"select distinct as_of from features.{entity.model} order by 1")]
        steps = [(b - a).days for a, b in itertools.pairwise(grid)]
        # snapshot_days (14) daily midnights + the serving as_of, before them one every 7 days (history_days)
        assert rows > 0 and steps[-14:] == [1] * 14 and set(steps[:-14]) <= {7} and len(grid) > 15
        (first_event,) = _query(warehouse, "select min(event_ts) from raw.interactions")[0]
        assert first_event < grid[0] <= first_event + timedelta(days=7)
    assert total >= 20


def test_training_examples_carry_labels_and_every_feature(built_home: Path) -> None:
    contract = load_contract()
    warehouse = Settings(home=built_home).warehouse_path
    columns = [r[0] for r in _query(warehouse, "describe features.training_examples")]
    assert columns[:9] == [
        "interaction_id", "user_id", "item_id", "creator_id", "event_ts", "as_of", "event_type", "label",
        "watch_seconds",
    ]  # fmt: skip
    assert columns[9:] == contract.names()
    wrong = _query(
        warehouse,
        "select count(*) from features.training_examples "
        "where label != case when event_type = 'skip' then 0 else 1 end",
    )[0][0]
    counts = dict(_query(warehouse, "select label, count(*) from features.training_examples group by 1"))
    assert wrong == 0 and counts.get(0, 0) > 0 and counts.get(1, 0) > 0


def test_contract_enforcement_rejects_a_wrong_data_type(built_home: Path, tmp_path: Path) -> None:
    """Declare user_tenure_days as bigint in a copy of the project: dbt must refuse to build the model."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    yaml_path = project / "models" / "features" / "_features__models.yml"
    text = yaml_path.read_text()
    declared = "- name: user_tenure_days\n        data_type: double"
    assert declared in text
    yaml_path.write_text(text.replace(declared, declared.replace("double", "bigint")))
    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    result = _dbt(["run", "--select", "user_features"], project, home)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "contract" in output.lower() and "user_tenure_days" in output


def test_plain_dbt_build_from_the_repo_root_follows_streamrec_home(generated_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(generated_home, home)
    result = _dbt(["build", "--select", "stg_raw__users"], Path("dbt_project"), home, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-2000:]
    warehouse = Settings(home=home).warehouse_path
    assert _query(warehouse, "select count(*) from staging.stg_raw__users") == _query(
        warehouse, "select count(*) from raw.users"
    )


def test_failed_build_keeps_the_published_warehouse(built_home: Path, copy_home) -> None:
    settings = copy_home(built_home)
    con = open_warehouse(settings, write_raw=True)
    # a zero-length item breaks the contract's range for item_length_seconds (min 1)
    con.execute("update raw.items set length_seconds = 0 where item_id = (select min(item_id) from raw.items)")
    con.close()
    before = _sha256(settings.warehouse_path)
    with pytest.raises(StreamRecError, match=r"warehouse not published: .*in_range_item_length_seconds"):
        build(settings)
    assert _sha256(settings.warehouse_path) == before
    assert not building_path(settings).exists()


def test_build_at_an_earlier_as_of_moves_the_whole_grid(built_home: Path, copy_home) -> None:
    settings = copy_home(built_home)
    (latest,) = _query(settings.warehouse_path, "select max(as_of) from features.user_features")[0]
    earlier = latest - timedelta(days=5)
    build(settings, select="+user_features", as_of=earlier.strftime("%Y-%m-%d"))
    (newest, oldest, users) = _query(
        settings.warehouse_path, "select max(as_of), min(as_of), count(distinct user_id) from features.user_features"
    )[0]
    daily = _query(
        settings.warehouse_path,
        "select count(distinct as_of) from features.user_features "
        f"where as_of >= timestamp '{newest:%Y-%m-%d %H:%M:%S}' - interval 14 day",
    )[0][0]
    assert newest == earlier
    assert daily == 15 and oldest < newest - timedelta(days=14) and users > 0


def test_as_of_must_be_a_midnight() -> None:
    assert parse_as_of("2025-05-01") == "2025-05-01 00:00:00"
    with pytest.raises(StreamRecError, match="midnight"):
        parse_as_of("2025-05-01T12:00:00")
    with pytest.raises(StreamRecError, match="not a date"):
        parse_as_of("yesterday")
