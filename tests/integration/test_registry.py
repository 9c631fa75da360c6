"""Registry on a real DuckDB warehouse: register, promote, rollback, refuse broken bundles, keep ACTIVE.json true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import streamrec.models_ml.registry as registry
from streamrec.batch.migrate import init_db
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, scalar
from streamrec.models_ml.bundle import ACTIVE_FILE, MANIFEST_NAME, BundleMismatch, read_manifest, write_manifest
from streamrec.models_ml.registry import (
    active_version,
    list_versions,
    promote,
    promotion_history,
    read_active_pointer,
    register,
    rollback,
)
from tests.bundle_factory import make_bundle

STREAMREC = Path(sys.executable).with_name("streamrec")


@pytest.fixture
def home(settings: Settings) -> Settings:
    """A migrated warehouse with two registered bundles, v1 and v2, nothing promoted."""
    init_db(settings)
    for seed, version in enumerate(("v1", "v2")):
        register(settings, make_bundle(settings.artifacts_dir, version, n_items=30, seed=seed))
    return settings


def _db_serving(settings: Settings) -> str | None:
    with connect(settings, read_only=True) as con:
        return scalar(con, "select version from ops.promotions order by promoted_at desc limit 1")


def _assert_pointer_agrees(settings: Settings) -> None:
    pointer = read_active_pointer(settings)
    serving = _db_serving(settings)
    if serving is None:
        assert pointer is None
        return
    assert pointer is not None and pointer["version"] == serving
    assert pointer["manifest_sha256"] == read_manifest(settings.artifacts_dir / serving).sha256


def test_register_records_versions_and_files(home: Settings) -> None:
    with connect(home, read_only=True) as con:
        files = scalar(con, "select count(*) from ops.bundle_files where version = 'v1'")
        stored = scalar(con, "select bundle_path from ops.model_versions where version = 'v1'")
    assert files == len(read_manifest(home.artifacts_dir / "v1").files)
    assert stored == "v1"  # relative to artifacts/, so a copied home still finds its bundles
    versions = list_versions(home)
    assert [v["version"] for v in versions] == ["v1", "v2"]
    assert not any(v["serving"] for v in versions)
    assert active_version(home) is None
    assert not (home.artifacts_dir / ACTIVE_FILE).exists()


def test_register_is_idempotent_but_refuses_a_different_bundle_under_a_used_tag(home: Settings) -> None:
    register(home, home.artifacts_dir / "v1")
    other = make_bundle(home.home / "elsewhere", "v1", n_items=12, seed=9)
    with pytest.raises(StreamRecError, match=r"version 'v1' is already registered with another manifest"):
        register(home, other)
    with connect(home, read_only=True) as con:
        assert scalar(con, "select n_items from ops.model_versions where version = 'v1'") == 30


def test_register_refuses_a_broken_bundle_and_writes_nothing(home: Settings) -> None:
    bundle = make_bundle(home.artifacts_dir, "v3", n_items=30, seed=3)
    (bundle / "ranker.pt").unlink()
    with pytest.raises(BundleMismatch, match=r"ranker\.pt is missing"):
        register(home, bundle)
    with connect(home, read_only=True) as con:
        assert scalar(con, "select count(*) from ops.model_versions where version = 'v3'") == 0
        assert scalar(con, "select count(*) from ops.bundle_files where version = 'v3'") == 0


def test_promote_and_rollback_sequence(home: Settings) -> None:
    with pytest.raises(StreamRecError, match="nothing has been promoted yet"):
        rollback(home, by="alice", reason="panic")

    assert promote(home, "v1", by="alice", reason="first model") == "promoted v1 (was nothing) by alice: first model"
    assert active_version(home) == "v1"
    _assert_pointer_agrees(home)
    with pytest.raises(StreamRecError, match="v1 is the first promoted version"):
        rollback(home, by="alice", reason="oops")

    assert promote(home, "v2", by="bob", reason="better ndcg").startswith("promoted v2 (was v1)")
    assert active_version(home) == "v2"
    _assert_pointer_agrees(home)
    assert [v["version"] for v in list_versions(home) if v["serving"]] == ["v2"]

    assert "already serving" in promote(home, "v2", by="bob", reason="again")

    assert rollback(home, by="carol", reason="latency regression").startswith("rolled back to v1 (was v2)")
    assert active_version(home) == "v1"
    _assert_pointer_agrees(home)

    history = promotion_history(home)
    assert [(p.action, p.version, p.previous_version) for p in history] == [
        ("promote", "v1", None),
        ("promote", "v2", "v1"),
        ("rollback", "v1", "v2"),
    ]
    assert [p.promoted_by for p in history] == ["alice", "bob", "carol"]
    assert [p.reason for p in history] == ["first model", "better ndcg", "latency regression"]
    assert history[0].promoted_at < history[1].promoted_at < history[2].promoted_at

    # a rollback is itself the current change, so rolling back again undoes it
    rollback(home, by="carol", reason="undo")
    assert active_version(home) == "v2"
    _assert_pointer_agrees(home)


def test_promoted_by_defaults_to_user(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "dana")
    promote(home, "v1", reason="default user")
    monkeypatch.delenv("USER")
    promote(home, "v2", reason="no user")
    assert [p.promoted_by for p in promotion_history(home)] == ["dana", "unknown"]


def test_unknown_version_is_named_with_the_known_ones(home: Settings) -> None:
    with pytest.raises(StreamRecError, match=r"unknown version 'v9'; registered versions: v1, v2"):
        promote(home, "v9", by="alice", reason="typo")
    assert promotion_history(home) == []


def test_promoting_a_tampered_bundle_is_refused_and_nothing_changes(home: Settings) -> None:
    promote(home, "v1", by="alice", reason="baseline")
    pointer_before = (home.artifacts_dir / ACTIVE_FILE).read_bytes()
    shutil.copy(home.artifacts_dir / "v1" / "item_index.faiss", home.artifacts_dir / "v2" / "item_index.faiss")
    with pytest.raises(BundleMismatch, match=r"refusing to serve v2: .*item_index\.faiss"):
        promote(home, "v2", by="alice", reason="should fail")
    assert active_version(home) == "v1"
    assert len(promotion_history(home)) == 1
    assert (home.artifacts_dir / ACTIVE_FILE).read_bytes() == pointer_before


def test_a_self_consistent_but_rewritten_manifest_is_refused(home: Settings) -> None:
    """Re-hashing a modified bundle makes it consistent on its own, but not the bundle that was registered."""
    bundle = home.artifacts_dir / "v2"
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    (bundle / MANIFEST_NAME).unlink()
    write_manifest(bundle, {**manifest, "index_recall_at_500": 0.5, "n_items": None})
    with pytest.raises(BundleMismatch, match=r"refusing to serve v2: .*does not match the registered"):
        promote(home, "v2", by="alice", reason="should fail")
    assert active_version(home) is None


def test_rollback_refuses_a_previous_bundle_that_no_longer_verifies(home: Settings) -> None:
    promote(home, "v1", by="alice", reason="one")
    promote(home, "v2", by="alice", reason="two")
    (home.artifacts_dir / "v1" / "ranker.pt").unlink()
    with pytest.raises(BundleMismatch, match=r"refusing to serve v1: .*ranker\.pt is missing"):
        rollback(home, by="alice", reason="three")
    assert active_version(home) == "v2"


def test_failed_pointer_write_after_commit_is_reconciled(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    promote(home, "v1", by="alice", reason="one")

    def disk_full(path: Path, artifacts_dir: Path, fields: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry, "write_sealed", disk_full)
    with pytest.raises(StreamRecError, match=r"promote of v2 is recorded in .* could not be written"):
        promote(home, "v2", by="alice", reason="two")
    assert _db_serving(home) == "v2"  # the warehouse is the record ...
    assert read_active_pointer(home)["version"] == "v1"  # ... and the projection is stale
    monkeypatch.undo()
    monkeypatch.setenv("STREAMREC_HOME", str(home.home))

    assert active_version(home) == "v2"
    _assert_pointer_agrees(home)


@pytest.mark.parametrize("damage", ["delete", "corrupt", "stale"])
def test_versions_rebuilds_a_missing_or_wrong_pointer(home: Settings, damage: str) -> None:
    promote(home, "v1", by="alice", reason="one")
    promote(home, "v2", by="alice", reason="two")
    path = home.artifacts_dir / ACTIVE_FILE
    if damage == "delete":
        path.unlink()
    elif damage == "corrupt":
        path.write_text('{"version": ')
    else:
        path.write_text(json.dumps({"version": "v1"}))
    assert [v["version"] for v in list_versions(home) if v["serving"]] == ["v2"]
    _assert_pointer_agrees(home)


def test_a_copied_home_still_finds_its_bundles(home: Settings, tmp_path: Path) -> None:
    promote(home, "v1", by="alice", reason="one")
    moved = Settings(home=tmp_path / "moved")
    shutil.copytree(home.home, moved.home)
    shutil.rmtree(home.home)
    assert promote(moved, "v2", by="alice", reason="two").startswith("promoted v2")
    _assert_pointer_agrees(moved)


def _cli(*args: str, home: Settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAMREC_HOME": str(home.home), "COLUMNS": "200", "USER": "ci"}
    return subprocess.run([str(STREAMREC), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_cli_promote_versions_rollback(home: Settings) -> None:
    listing = _cli("versions", home=home)
    assert listing.returncode == 0, listing.stderr
    assert "v1" in listing.stdout and "v2" in listing.stdout and "yes" not in listing.stdout

    done = _cli("promote", "v1", "--reason", "cli test", home=home)
    assert done.returncode == 0, done.stderr
    assert "promoted v1 (was nothing) by ci: cli test" in done.stdout
    done = _cli("promote", "v2", "--by", "erin", home=home)
    assert "promoted v2 (was v1) by erin: manual promotion" in done.stdout

    listing = _cli("versions", home=home)
    serving_lines = [line for line in listing.stdout.splitlines() if "yes" in line]
    assert len(serving_lines) == 1 and "v2" in serving_lines[0]

    back = _cli("rollback", "--reason", "bad canary", home=home)
    assert back.returncode == 0, back.stderr
    assert "rolled back to v1 (was v2) by ci: bad canary" in back.stdout
    assert active_version(home) == "v1"

    bad = _cli("promote", "nope", home=home)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == ["error: unknown version 'nope'; registered versions: v1, v2"]
    assert bad.stdout == ""

    (home.artifacts_dir / "v2" / "item_ids.npy").write_bytes(b"")
    broken = _cli("promote", "v2", home=home)
    assert broken.returncode == 1
    lines = broken.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve v2" in lines[0] and "item_ids.npy" in lines[0]
    assert active_version(home) == "v1"


def test_registry_without_a_warehouse_says_run_init(settings: Settings) -> None:
    with pytest.raises(StreamRecError, match=r"no warehouse at .*warehouse\.duckdb: run `streamrec init`"):
        promote(settings, "v1", by="alice", reason="too early")
    with pytest.raises(StreamRecError, match=r"no warehouse at"):
        register(settings, make_bundle(settings.artifacts_dir, "v1"))
    assert not settings.warehouse_path.exists()
