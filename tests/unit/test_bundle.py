"""verify_bundle refuses every way a bundle's parts can stop belonging together, and names the culprit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest
import yaml

from streamrec.contracts import load_contract
from streamrec.contracts.schema import CONTRACT_PATH
from streamrec.models_ml.bundle import (
    INDEX_FILE,
    MANIFEST_NAME,
    BundleMismatch,
    file_sha256,
    read_manifest,
    verify_bundle,
    write_manifest,
)
from tests.bundle_factory import flat_index, make_bundle, unit_rows


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def bundle(artifacts: Path) -> Path:
    return make_bundle(artifacts, "v1", n_items=40, seed=1)


def _rewrite_manifest(bundle: Path, **changes: object) -> None:
    """What a careless (or malicious) copy would do: re-hash whatever is in the directory now."""
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    (bundle / MANIFEST_NAME).unlink()
    manifest.pop("n_items")
    write_manifest(bundle, {**manifest, **changes})


def test_complete_bundle_verifies_and_manifest_hashes_every_file(bundle: Path) -> None:
    manifest = verify_bundle(bundle, expected_version="v1")
    assert manifest.version == "v1"
    assert manifest.n_items == 40
    assert manifest.embedding_dim == 128
    assert manifest.sha256 == file_sha256(bundle / MANIFEST_NAME)
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    assert set(manifest.files) == on_disk
    assert all(manifest.sizes[name] == (bundle / name).stat().st_size for name in on_disk)


def test_write_manifest_returns_the_manifest_sha(artifacts: Path) -> None:
    bundle = make_bundle(artifacts, "v9", n_items=5)
    meta = {"contract_sha256": load_contract().sha256, "index_kind": "flat_ip", "index_recall_at_500": 1.0}
    sha = write_manifest(bundle, meta)
    assert sha == file_sha256(bundle / MANIFEST_NAME) == read_manifest(bundle).sha256


def test_index_from_another_version_with_same_shape_is_refused(bundle: Path, artifacts: Path) -> None:
    other = make_bundle(artifacts, "v2", n_items=40, seed=2)
    shutil.copy(other / INDEX_FILE, bundle / INDEX_FILE)
    with pytest.raises(BundleMismatch, match=r"item_index\.faiss sha256 .* does not match manifest"):
        verify_bundle(bundle)


def test_index_from_another_version_is_refused_even_with_a_rehashed_manifest(bundle: Path, artifacts: Path) -> None:
    other = make_bundle(artifacts, "v2", n_items=40, seed=2)
    shutil.copy(other / INDEX_FILE, bundle / INDEX_FILE)
    _rewrite_manifest(bundle)
    with pytest.raises(BundleMismatch, match=r"item_index\.faiss does not index item_embeddings\.npy"):
        verify_bundle(bundle)


def test_index_with_a_different_item_count_is_refused(bundle: Path, artifacts: Path) -> None:
    other = make_bundle(artifacts, "v2", n_items=41, seed=2)
    shutil.copy(other / INDEX_FILE, bundle / INDEX_FILE)
    with pytest.raises(BundleMismatch, match=r"item_index\.faiss is \d+ bytes, manifest says \d+"):
        verify_bundle(bundle)
    _rewrite_manifest(bundle)
    with pytest.raises(BundleMismatch, match=r"item counts disagree: .*item_ids\.npy length 40.*ntotal 41"):
        verify_bundle(bundle)


def test_truncated_file_is_refused(bundle: Path) -> None:
    path = bundle / "retrieval.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleMismatch, match=rf"retrieval\.pt is {len(data) // 2} bytes, manifest says {len(data)}"):
        verify_bundle(bundle)


def test_missing_file_is_refused(bundle: Path) -> None:
    (bundle / "ranker.pt").unlink()
    with pytest.raises(BundleMismatch, match=r"ranker\.pt is missing"):
        verify_bundle(bundle)


def test_missing_manifest_is_refused(bundle: Path) -> None:
    (bundle / MANIFEST_NAME).unlink()
    with pytest.raises(BundleMismatch, match=r"no manifest\.json"):
        verify_bundle(bundle)


def test_unlisted_extra_file_is_refused(bundle: Path) -> None:
    (bundle / "notes.txt").write_text("added later")
    with pytest.raises(BundleMismatch, match=r"notes\.txt not listed in manifest\.json"):
        verify_bundle(bundle)


def _modified_contract(tmp_path: Path):
    raw = yaml.safe_load(CONTRACT_PATH.read_text())
    raw["features"][0]["max"] = float(raw["features"][0]["max"]) + 1
    path = tmp_path / "features.yml"
    path.write_text(yaml.safe_dump(raw))
    return load_contract(path)


def test_bundle_trained_on_another_contract_is_refused(bundle: Path, tmp_path: Path) -> None:
    changed = _modified_contract(tmp_path)
    assert changed.sha256 != load_contract().sha256
    with pytest.raises(BundleMismatch, match=r"contract_sha256 .* does not match the current contract"):
        verify_bundle(bundle, contract=changed)


def test_changed_contract_file_on_disk_is_refused(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamrec.contracts import schema as contract_schema

    changed = _modified_contract(tmp_path)
    monkeypatch.setattr(contract_schema, "CONTRACT_PATH", tmp_path / "features.yml")
    assert load_contract().sha256 == changed.sha256
    with pytest.raises(BundleMismatch, match=r"manifest\.json contract_sha256"):
        verify_bundle(bundle)


def test_checkpoint_trained_on_another_contract_is_refused(artifacts: Path, tmp_path: Path) -> None:
    """Manifest says current contract but the ranker was trained on another: the pair must not serve."""
    import torch

    bundle = make_bundle(artifacts, "v1")
    checkpoint = torch.load(bundle / "ranker.pt", weights_only=True)
    checkpoint["contract_sha256"] = _modified_contract(tmp_path).sha256
    torch.save(checkpoint, bundle / "ranker.pt")
    _rewrite_manifest(bundle)
    with pytest.raises(BundleMismatch, match=r"ranker\.pt contract_sha256"):
        verify_bundle(bundle)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 64}, r"manifest\.json embedding_dim is 64, expected 128"),
        ({"config_dim": 64}, r"retrieval\.pt config output dimension is 64, expected 128"),
        ({"dim": 64, "manifest_dim": 128, "config_dim": 128}, r"item_embeddings\.npy has shape \(40, 64\)"),
    ],
)
def test_wrong_embedding_dimension_is_refused(artifacts: Path, kwargs: dict, message: str) -> None:
    bundle = make_bundle(artifacts, "v1", **kwargs)
    with pytest.raises(BundleMismatch, match=message):
        verify_bundle(bundle)


def test_index_of_wrong_dimension_is_refused(bundle: Path) -> None:
    faiss.write_index(flat_index(unit_rows(np.random.default_rng(3), 40, 64)), str(bundle / INDEX_FILE))
    _rewrite_manifest(bundle)
    with pytest.raises(BundleMismatch, match=r"item_index\.faiss dimension d=64, expected 128"):
        verify_bundle(bundle)


def test_tampered_manifest_entries_are_refused(bundle: Path) -> None:
    path = bundle / MANIFEST_NAME
    original = json.loads(path.read_text())

    tampered = dict(original, n_items=39)
    path.write_text(json.dumps(tampered))
    with pytest.raises(BundleMismatch, match=r"manifest\.json n_items 39"):
        verify_bundle(bundle)

    tampered = dict(original, files=dict(original["files"], **{"item_ids.npy": "0" * 64}))
    path.write_text(json.dumps(tampered))
    with pytest.raises(BundleMismatch, match=r"item_ids\.npy sha256 .* does not match manifest 0000"):
        verify_bundle(bundle)

    tampered = dict(original, version="v2")
    path.write_text(json.dumps(tampered))
    with pytest.raises(BundleMismatch, match=r"says version 'v2' but the directory is 'v1'"):
        verify_bundle(bundle)

    path.write_text(json.dumps(original)[:-10])
    with pytest.raises(BundleMismatch, match=r"manifest\.json: not valid JSON"):
        verify_bundle(bundle)


def test_manifest_rewritten_after_registration_is_refused(bundle: Path) -> None:
    registered = read_manifest(bundle).sha256
    verify_bundle(bundle, expected_manifest_sha256=registered)
    _rewrite_manifest(bundle, index_recall_at_500=0.99)  # same files, edited claims: not what was registered
    verify_bundle(bundle)  # self-consistent on its own, so only the registry's record can tell
    with pytest.raises(BundleMismatch, match=r"does not match the registered"):
        verify_bundle(bundle, expected_manifest_sha256=registered)


def test_renamed_directory_or_other_expected_version_is_refused(bundle: Path) -> None:
    with pytest.raises(BundleMismatch, match=r"says version 'v1', expected 'v7'"):
        verify_bundle(bundle, expected_version="v7")
    moved = bundle.rename(bundle.with_name("v3"))
    with pytest.raises(BundleMismatch, match=r"says version 'v1' but the directory is 'v3'"):
        verify_bundle(moved)


def test_write_manifest_refuses_incomplete_bundles(artifacts: Path) -> None:
    bundle = make_bundle(artifacts, "v1")
    (bundle / "item_ids.npy").unlink()
    meta = {"contract_sha256": "x", "index_kind": "flat_ip", "index_recall_at_500": 1.0}
    with pytest.raises(BundleMismatch, match=r"missing item_ids\.npy"):
        write_manifest(bundle, meta)
    with pytest.raises(BundleMismatch, match=r"version 'v2' does not match directory name 'v1'"):
        write_manifest(bundle, dict(meta, version="v2"))


def test_load_bundle_rebuilds_models_and_index(artifacts: Path) -> None:
    import torch

    from streamrec.models_ml.bundle import load_bundle

    bundle = make_bundle(artifacts, "v1", n_items=25, real_models=True, metrics={"auc": np.float32(0.75)})
    loaded = load_bundle(bundle)
    assert loaded.manifest.metrics == {"auc": 0.75}
    assert loaded.index.ntotal == len(loaded.item_ids) == 25
    assert loaded.two_tower.cfg.embedding_dim == 128 and not loaded.two_tower.training
    assert loaded.ranker.feature_names == load_contract().names()
    assert loaded.online_item_features.column("item_id").to_pylist() == loaded.item_ids[:2].tolist()
    user = {"user_id": torch.tensor([1])} | {
        name: torch.zeros(1, dtype=torch.long if load_contract()[name].codes else torch.float32)
        for name in loaded.two_tower.user_feature_names
    }
    assert loaded.two_tower.user_embedding(user).shape == (1, 128)


def test_load_bundle_verifies_first(artifacts: Path) -> None:
    from streamrec.models_ml.bundle import load_bundle

    bundle = make_bundle(artifacts, "v1", real_models=True)
    (bundle / "item_embeddings.npy").write_bytes(b"")
    with pytest.raises(BundleMismatch, match=r"item_embeddings\.npy is 0 bytes"):
        load_bundle(bundle)
