"""`streamrec versions --metrics` and `streamrec versions compare A B` on a real registry with two bundles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.batch.migrate import init_db
from streamrec.batch.version_compare import compare
from streamrec.core.settings import Settings
from streamrec.models_ml.registry import register
from tests.bundle_factory import make_bundle

STREAMREC = Path(sys.executable).with_name("streamrec")
METRICS = {
    "v1": {"model_recall@10": 0.21, "model_ndcg@10": 0.11, "features_as_of": "2026-03-01T00:00:00", "seed": 3,
           "epochs": 1, "train_positives": 900, "two_tower_loss_by_epoch": [2.0]},
    "v2": {"model_recall@10": 0.25, "model_ndcg@10": 0.11, "features_as_of": "2026-03-08T00:00:00", "seed": 4,
           "epochs": 3, "train_positives": 1100, "two_tower_loss_by_epoch": [2.0, 1.5, 1.2]},
}  # fmt: skip


@pytest.fixture
def home(settings: Settings) -> Settings:
    init_db(settings)
    for seed, version in enumerate(("v1", "v2")):
        register(
            settings, make_bundle(settings.artifacts_dir, version, n_items=30, seed=seed, metrics=METRICS[version])
        )
    return settings


def _cli(*args: str, home: Settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAMREC_HOME": str(home.home), "COLUMNS": "220"}
    return subprocess.run([str(STREAMREC), *args], capture_output=True, text=True, env=env, timeout=120)


def test_compare_sections(home: Settings) -> None:
    rows = {(r.section, r.name): r for r in compare(home, "v1", "v2")}
    recall = rows["offline metrics", "model_recall@10"]
    assert (recall.a, recall.b, recall.differs) == (0.21, 0.25, True)
    assert not rows["offline metrics", "model_ndcg@10"].differs
    assert ("offline metrics", "two_tower_loss_by_epoch") not in rows  # a list, not one number
    assert rows["sources", "features_as_of"].b == "2026-03-08T00:00:00"
    assert (rows["hyperparameters", "seed"].a, rows["hyperparameters", "seed"].b) == (3, 4)
    assert rows["hyperparameters", "two_tower.embedding_dim"].a == rows["hyperparameters", "two_tower.embedding_dim"].b
    assert not rows["provenance", "contract_sha256"].differs and rows["provenance", "manifest_sha256"].differs


@pytest.mark.slow
def test_cli_versions_metrics_and_compare(home: Settings) -> None:
    listing = _cli("versions", "--metrics", home=home)
    assert listing.returncode == 0, listing.stderr
    assert "model_recall@10" in listing.stdout and "0.2100" in listing.stdout and "0.2500" in listing.stdout
    plain = _cli("versions", home=home)
    assert plain.returncode == 0 and "model_recall@10" not in plain.stdout and "v2" in plain.stdout

    both = _cli("versions", "compare", "v1", "v2", home=home)
    assert both.returncode == 0, both.stderr
    for needle in ("offline metrics", "sources", "hyperparameters", "provenance", "features_as_of", "≠"):
        assert needle in both.stdout, needle
    only = _cli("versions", "compare", "v1", "v2", "--diff", home=home)
    assert "model_ndcg@10" not in only.stdout and "model_recall@10" in only.stdout

    missing = _cli("versions", "compare", "v1", "v9", home=home)
    assert missing.returncode == 1 and "no registered version 'v9' (registered: v1, v2)" in missing.stderr
