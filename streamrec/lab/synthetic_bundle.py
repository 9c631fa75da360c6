"""A synthetic but real bundle (random weights, random valid features) for API tests and the serving benchmark.

Everything is the real thing except the numbers: a `TwoTower` and a `Ranker` with random weights,
item embeddings from that item tower (or, for benchmarks, from the clustered synthetic generator),
the index from `models_ml.index.build_index`, online feature tables with every contract feature
inside its contract range, and a manifest from `models_ml.bundle.write_manifest`, so
`load_bundle` verifies it like a trained bundle. Id embeddings are disabled (vocabulary of 0: every
id is "unknown") so a million-item catalogue does not need a million-row embedding table.
Nothing here is meaningful as a recommendation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from streamrec.contracts.schema import Feature, FeatureContract, load_contract


def _random_column(feature: Feature, n: int, rng: np.random.Generator) -> pa.Array:
    if feature.codes:
        codes = np.array(feature.codes)
        # Skewed towards the first codes, like real languages/genres, so creator groups differ in size.
        weights = 1.0 / np.arange(1, len(codes) + 1)
        return pa.array(codes[rng.choice(len(codes), size=n, p=weights / weights.sum())])
    if feature.dtype == "bool":
        return pa.array(rng.random(n) < 0.15)
    assert feature.min is not None and feature.max is not None  # numeric features carry both bounds
    low, high = float(feature.min), float(feature.max)
    span = min(high - low, 1000.0)  # keep values in a plausible part of wide ranges
    values = low + rng.random(n) * span
    if feature.dtype == "int64":
        return pa.array(np.floor(values).astype(np.int64))
    values = np.minimum(values, high)
    if feature.nullable:
        return pa.array(values, mask=rng.random(n) < 0.05)
    return pa.array(values)


def feature_table(
    features: list[Feature], keys: dict[str, np.ndarray], n: int, rng: np.random.Generator, as_of: datetime
) -> pa.Table:
    """Keys, `as_of` and every feature with random values inside the contract."""
    columns: dict[str, pa.Array] = {name: pa.array(values) for name, values in keys.items()}
    columns["as_of"] = pa.array([as_of] * n, type=pa.timestamp("us"))
    for feature in features:
        columns[feature.name] = _random_column(feature, n, rng)
    return pa.table(columns)


def write_synthetic_bundle(
    artifacts_dir: Path,
    version: str,
    *,
    n_users: int,
    n_items: int,
    n_creators: int | None = None,
    seed: int = 0,
    first_item_id: int = 1,
    exact_max_items: int = 50_000,
    contract: FeatureContract | None = None,
    item_embeddings: str = "tower",
) -> Path:
    """Write `artifacts_dir/version/` with every bundle file and its manifest; return the directory.

    `item_embeddings`: "tower" = the random item tower's output for each item's features; "clustered"
    = `models_ml.synthetic_embeddings.clustered_unit_vectors` (the Gaussian mixture calibrated on a
    trained bundle), so the index `build_index` picks is the one a trained catalogue of this size
    would get (a random-weight tower's embeddings have no realistic neighbour structure).
    """
    from streamrec.models_ml.bundle import write_manifest
    from streamrec.models_ml.index import build_index
    from streamrec.models_ml.model import TwoTower, TwoTowerConfig, feature_to_dict, save_two_tower
    from streamrec.models_ml.ranker import TWO_TOWER_SCORE, make_ranker, save_ranker
    from streamrec.models_ml.synthetic_embeddings import clustered_unit_vectors
    from streamrec.models_ml.tensors import to_tensors

    contract = contract or load_contract()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    user_feats = contract.for_entity("user")
    item_feats = contract.for_entity("item")
    bundle_dir = artifacts_dir / version
    (bundle_dir / "online_features").mkdir(parents=True, exist_ok=False)
    as_of = datetime(2026, 1, 1)

    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    item_ids = np.arange(first_item_id, first_item_id + n_items, dtype=np.int64)
    creators = rng.integers(1, (n_creators or max(1, n_items // 20)) + 1, size=n_items).astype(np.int64)
    users = feature_table(user_feats, {"user_id": user_ids}, n_users, rng, as_of)
    items = feature_table(item_feats, {"item_id": item_ids, "creator_id": creators}, n_items, rng, as_of)
    pq.write_table(users, bundle_dir / "online_features" / "user_features.parquet")
    pq.write_table(items, bundle_dir / "online_features" / "item_features.parquet")

    cfg = TwoTowerConfig(
        user_features=[feature_to_dict(f) for f in user_feats],
        item_features=[feature_to_dict(f) for f in item_feats],
    )
    model = TwoTower(cfg).eval()
    ranker = make_ranker([*user_feats, *item_feats, TWO_TOWER_SCORE]).eval()
    save_two_tower(model, bundle_dir / "retrieval.pt", contract.sha256)
    save_ranker(ranker, bundle_dir / "ranker.pt", contract.sha256)

    item_columns = {name: items.column(name).to_numpy(zero_copy_only=False) for name in items.column_names}
    if item_embeddings == "clustered":
        embeddings = clustered_unit_vectors(n_items, cfg.embedding_dim, seed=seed)
    elif item_embeddings == "tower":
        embeddings = np.empty((n_items, cfg.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, n_items, 65_536):
                chunk = {name: values[start : start + 65_536] for name, values in item_columns.items()}
                embeddings[start : start + 65_536] = model.item_embedding(to_tensors(chunk, item_feats)).numpy()
    else:
        raise ValueError(f"item_embeddings must be 'tower' or 'clustered', not {item_embeddings!r}")
    index, info = build_index(embeddings, exact_max_items=exact_max_items)
    faiss.write_index(index, str(bundle_dir / "item_index.faiss"))
    np.save(bundle_dir / "item_ids.npy", item_ids)
    np.save(bundle_dir / "item_embeddings.npy", embeddings)
    schema = {
        "contract_sha256": contract.sha256,
        "features": [feature_to_dict(f) for f in user_feats + item_feats],
        "derived_features": [feature_to_dict(TWO_TOWER_SCORE)],
    }
    (bundle_dir / "feature_schema.json").write_text(json.dumps(schema, indent=2))
    (bundle_dir / "reference_distributions.json").write_text(json.dumps({"source": "synthetic", "features": {}}))
    write_manifest(
        bundle_dir,
        {
            "version": version,
            "contract_sha256": contract.sha256,
            "index_kind": info.kind,
            "index_recall_at_500": info.recall_at_500,
            "metrics": {"synthetic": True, "index_params": info.params, "index_build_seconds": info.build_seconds},
        },
    )
    register_synthetic(artifacts_dir, version)  # as `streamrec train` registers what it writes
    return bundle_dir


def register_synthetic(artifacts_dir: Path, version: str) -> None:
    """Write the sealed registration record `streamrec train` would (tests and bench skip the warehouse)."""
    from streamrec.core.registry_seal import registration_path, write_sealed
    from streamrec.models_ml.bundle import read_manifest

    manifest = read_manifest(artifacts_dir / version)
    fields = {"version": version, "manifest_sha256": manifest.sha256, "bundle_path": version}
    write_sealed(registration_path(artifacts_dir, version), artifacts_dir, fields)


def write_active_pointer(artifacts_dir: Path, version: str) -> None:
    """Write ACTIVE.json for `version` as `streamrec promote` does, sealed (tests and bench skip the registry)."""
    import uuid

    from streamrec.core.registry_seal import ACTIVE_FILE, write_sealed
    from streamrec.models_ml.bundle import read_manifest

    manifest = read_manifest(artifacts_dir / version)
    register_synthetic(artifacts_dir, version)
    fields = {
        "version": version,
        "manifest_sha256": manifest.sha256,
        "promoted_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "promotion_id": uuid.uuid4().hex,
        "bundle_path": version,
    }
    write_sealed(artifacts_dir / ACTIVE_FILE, artifacts_dir, fields)
