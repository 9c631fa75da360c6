"""Small but real model bundles for tests: real FAISS index, npy arrays, torch checkpoints, JSON and parquet.

They do not need the training code: the checkpoints hold a tiny state dict and the config keys the
loaders read, which is all `verify_bundle` looks at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from streamrec.contracts import FeatureContract, load_contract
from streamrec.models_ml.bundle import write_manifest


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """`n` random L2-normalised float32 rows of width `dim`."""
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def flat_index(embeddings: np.ndarray) -> faiss.Index:
    """An exact inner-product index over `embeddings`."""
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    return index


def make_bundle(
    artifacts_dir: Path,
    version: str,
    *,
    n_items: int = 40,
    dim: int = 128,
    config_dim: int | None = None,
    manifest_dim: int | None = None,
    seed: int = 0,
    contract: FeatureContract | None = None,
    metrics: dict[str, Any] | None = None,
    real_models: bool = False,
) -> Path:
    """Write a complete bundle `artifacts_dir/version` and its manifest; return the directory.

    `real_models` saves an untrained TwoTower and Ranker through the models' own save functions
    (so `load_bundle` can rebuild them); otherwise the checkpoints are minimal dicts.
    """
    contract = contract or load_contract()
    rng = np.random.default_rng(seed)
    bundle = artifacts_dir / version
    (bundle / "online_features").mkdir(parents=True, exist_ok=True)
    embeddings = unit_rows(rng, n_items, dim)
    item_ids = np.arange(1000, 1000 + n_items, dtype=np.int64)
    np.save(bundle / "item_embeddings.npy", embeddings)
    np.save(bundle / "item_ids.npy", item_ids)
    faiss.write_index(flat_index(embeddings), str(bundle / "item_index.faiss"))
    if real_models:
        _save_real_models(bundle, contract, n_items)
    else:
        _save_fake_models(bundle, contract, rng, config_dim or dim)
    _write_the_rest(bundle, contract, item_ids)
    write_manifest(
        bundle,
        {
            "contract_sha256": contract.sha256,
            "embedding_dim": manifest_dim or dim,
            "index_kind": "flat_ip",
            "index_recall_at_500": 1.0,
            "metrics": metrics or {"val_loss": 0.5},
        },
    )
    return bundle


def _save_real_models(bundle: Path, contract: FeatureContract, n_items: int) -> None:
    from streamrec.models_ml.model import TwoTower, TwoTowerConfig, feature_to_dict, save_two_tower
    from streamrec.models_ml.ranker import make_ranker, save_ranker

    torch.manual_seed(0)
    config = TwoTowerConfig(
        hidden_dim=16,
        n_user_ids=10,
        n_item_ids=n_items,
        user_features=[feature_to_dict(f) for f in contract.for_entity("user")],
        item_features=[feature_to_dict(f) for f in contract.for_entity("item")],
    )
    save_two_tower(TwoTower(config), bundle / "retrieval.pt", contract.sha256)
    save_ranker(make_ranker(contract.features), bundle / "ranker.pt", contract.sha256)


def _save_fake_models(bundle: Path, contract: FeatureContract, rng: np.random.Generator, config_dim: int) -> None:
    user_names = contract.names("user")
    item_names = contract.names("item")
    torch.save(
        {
            "config": {"embedding_dim": config_dim, "hidden_dim": 16},
            "state_dict": {"tower.weight": torch.from_numpy(rng.normal(size=(4, 4)).astype(np.float32))},
            "user_feature_names": user_names,
            "item_feature_names": item_names,
            "norm": {name: [0.0, 1.0] for name in user_names + item_names},
            "contract_sha256": contract.sha256,
        },
        bundle / "retrieval.pt",
    )
    torch.save(
        {
            "config": {"hidden_dim": 8},
            "state_dict": {"mlp.weight": torch.from_numpy(rng.normal(size=(2, 2)).astype(np.float32))},
            "feature_names": user_names + item_names,
            "norm": {name: [0.0, 1.0] for name in user_names + item_names},
            "contract_sha256": contract.sha256,
        },
        bundle / "ranker.pt",
    )


def _write_the_rest(bundle: Path, contract: FeatureContract, item_ids: np.ndarray) -> None:
    features = [
        {
            "name": f.name,
            "entity": f.entity,
            "dtype": f.dtype,
            "unit": f.unit,
            "min": f.min,
            "max": f.max,
            "nullable": f.nullable,
            "codes": list(f.codes),
        }
        for f in contract.features
    ]
    (bundle / "feature_schema.json").write_text(json.dumps({"contract_sha256": contract.sha256, "features": features}))
    (bundle / "reference_distributions.json").write_text(json.dumps({"tag": "test", "features": {}}))
    pq.write_table(
        pa.table({"user_id": pa.array([1, 2], pa.int64())}), bundle / "online_features/user_features.parquet"
    )
    pq.write_table(pa.table({"item_id": pa.array(item_ids[:2])}), bundle / "online_features/item_features.parquet")
