"""Alembic migrations on a real DuckDB file: up, down, up again, models in step with the migrated schema."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from streamrec.batch.migrate import current_revision, downgrade_db, head_revision, init_db
from streamrec.core.settings import Settings
from streamrec.core.tables import Base, Impression, ModelVersion, Promotion
from streamrec.core.warehouse import fetchall, scalar
from tests.paths import REPO_ROOT

OPS_TABLES = {
    "model_versions",
    "bundle_files",
    "promotions",
    "impressions",
    "events",
    "offline_recommendations",
    "offline_holdout",
    "feature_snapshots",
    "raw_loads",
}


def schema_description(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """Every ops table's columns (order, type, nullability), primary key and check constraints."""
    tables: dict[str, dict] = {}
    for table, column, kind, nullable in fetchall(
        con,
        "select table_name, column_name, data_type, is_nullable from information_schema.columns "
        "where table_schema = 'ops' order by table_name, ordinal_position",
    ):
        tables.setdefault(table, {"columns": [], "primary_key": None, "checks": []})
        tables[table]["columns"].append((column, kind, nullable))
    for table, kind, columns, expression in fetchall(
        con,
        "select table_name, constraint_type, constraint_column_names, expression from duckdb_constraints() "
        "where schema_name = 'ops' and constraint_type in ('PRIMARY KEY', 'CHECK') order by table_name",
    ):
        if kind == "PRIMARY KEY":
            tables[table]["primary_key"] = list(columns)
        else:
            tables[table]["checks"].append(expression)
    return tables


def models_description(directory: Path) -> dict[str, dict]:
    """The same description for the SQLAlchemy models, created with `metadata.create_all` in a scratch file."""
    path = directory / "models.duckdb"
    engine = sa.create_engine(f"duckdb:///{path}", poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text("create schema ops"))
        Base.metadata.create_all(connection)
    engine.dispose()
    with duckdb.connect(str(path), read_only=True) as con:
        return schema_description(con)


def test_upgrade_head_creates_ops_tables_matching_the_models(settings: Settings, tmp_path: Path) -> None:
    revision = init_db(settings)
    assert revision == head_revision() == current_revision(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        migrated = schema_description(con)
        assert scalar(con, "select version_num from main.alembic_version") == revision
    assert set(migrated) == OPS_TABLES
    assert migrated == models_description(tmp_path)
    assert migrated["impressions"]["primary_key"] == ["request_id", "position"]
    assert ("served_at", "TIMESTAMP", "NO") in migrated["impressions"]["columns"]
    assert ("size_bytes", "BIGINT", "NO") in migrated["bundle_files"]["columns"]


def test_downgrade_base_removes_tables_and_schema_and_upgrade_works_again(settings: Settings) -> None:
    init_db(settings)
    assert downgrade_db(settings, "base") is None
    assert current_revision(settings) is None
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert scalar(con, "select count(*) from information_schema.tables where table_schema = 'ops'") == 0
        assert scalar(con, "select count(*) from information_schema.schemata where schema_name = 'ops'") == 0
    assert init_db(settings) == head_revision()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert set(schema_description(con)) == OPS_TABLES


def test_the_snapshot_revision_downgrades_to_the_first_and_keeps_impressions(settings: Settings) -> None:
    init_db(settings)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "insert into ops.impressions (request_id, position, served_at, user_id, item_id, policy, model_version, "
            "snapshot_id, feature_age_seconds) values ('r', 1, now(), 1, 2, 'personalized', 'v', 'fs-x', 3.5)"
        )
    assert downgrade_db(settings, "3f2a1c5e8b90") == "3f2a1c5e8b90"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        tables = schema_description(con)
        assert "feature_snapshots" not in tables
        assert "snapshot_id" not in [column[0] for column in tables["impressions"]["columns"]]
        assert scalar(con, "select count(*) from ops.impressions") == 1
    assert init_db(settings) == head_revision() == "7c4e2a9d1b36"  # feature_snapshots, then raw_loads
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert scalar(con, "select count(*) from ops.impressions where snapshot_id is null") == 1


def test_rerunning_upgrade_head_keeps_data_and_orm_round_trips(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the migrations folder is found from the package, not the working directory
    init_db(settings)
    engine = sa.create_engine(f"duckdb:///{settings.warehouse_path}", poolclass=sa.pool.NullPool)
    created = datetime(2026, 11, 25, 12, 30, 0, 123456)
    with Session(engine) as session, session.begin():
        session.add(
            ModelVersion(
                version="v1",
                created_at=created,
                contract_sha256="c" * 64,
                manifest_sha256="m" * 64,
                bundle_path="/bundles/v1",
                embedding_dim=64,
                n_items=1000,
                index_kind="flat",
                index_recall_at_500=0.97,
                metrics_json='{"ndcg": 0.1}',
            )
        )
        session.add(
            Impression(
                request_id="r1",
                position=0,
                served_at=created,
                user_id=2**40,
                item_id=7,
                policy="model",
                model_version="v1",
                score=0.5,
            )
        )
    engine.dispose()

    init_db(settings)  # a no-op upgrade must not touch data

    engine = sa.create_engine(f"duckdb:///{settings.warehouse_path}", poolclass=sa.pool.NullPool)
    with Session(engine) as session:
        version = session.get(ModelVersion, "v1")
        assert version is not None
        assert (version.created_at, version.embedding_dim, version.notes) == (created, 64, None)
        assert version.index_recall_at_500 == pytest.approx(0.97)
        impression = session.get(Impression, ("r1", 0))
        assert impression is not None
        assert (impression.user_id, impression.propensity) == (2**40, None)
    engine.dispose()


def test_check_constraint_rejects_unknown_promotion_action(settings: Settings) -> None:
    init_db(settings)
    engine = sa.create_engine(f"duckdb:///{settings.warehouse_path}", poolclass=sa.pool.NullPool)
    row = Promotion(
        promotion_id="a" * 32, version="v1", action="delete", promoted_at=datetime(2026, 1, 1), reason="test"
    )
    with pytest.raises(sa.exc.DBAPIError, match="CHECK"), Session(engine) as session, session.begin():
        session.add(row)
    engine.dispose()


def test_alembic_cli_takes_the_warehouse_from_streamrec_home(tmp_path: Path) -> None:
    home = tmp_path / "cli-home"
    env = {**os.environ, "STREAMREC_HOME": str(home)}
    alembic = [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini")]
    subprocess.run([*alembic, "upgrade", "head"], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert current_revision(Settings(home=home)) == head_revision()

    url = f"duckdb:///{tmp_path / 'other.duckdb'}"
    offline = subprocess.run(
        [*alembic, "-x", f"url={url}", "upgrade", "head", "--sql"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "CREATE TABLE ops.impressions" in offline.stdout
    assert not (tmp_path / "other.duckdb").exists()  # --sql only prints
