"""Co-versioned model bundles: write the manifest, verify that every part belongs together, load it.

A bundle is one directory `artifacts/<version>/` holding the retrieval model, the FAISS index and
the item ids/embeddings it was built from, the ranker, the feature schema, the PSI reference and
the online feature snapshot. `manifest.json` is written last and records the sha256 and size of
every other file, so a bundle is only usable when each file is byte-for-byte the one trained
together with the others. `verify_bundle` also checks what hashes alone cannot tell: that the
parts agree with each other (embedding dimension, item counts, index rows vs embeddings) and with
the feature contract the code runs with today. Any disagreement raises `BundleMismatch` naming the
file and the expected and actual values, so a mismatched retrieval model / index pair never serves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamrec.contracts import FeatureContract, load_contract
from streamrec.core import registry_seal
from streamrec.core.atomic import write_json_atomically
from streamrec.core.errors import StreamRecError

if TYPE_CHECKING:  # the models load lazily (torch modules), the types are only for the checker
    import faiss
    import pyarrow as pa

    from streamrec.models_ml.model import TwoTower
    from streamrec.models_ml.ranker import Ranker

MANIFEST_NAME = "manifest.json"
EMBEDDING_DIM = 128
RETRIEVAL_FILE = "retrieval.pt"
INDEX_FILE = "item_index.faiss"
ITEM_IDS_FILE = "item_ids.npy"
EMBEDDINGS_FILE = "item_embeddings.npy"
RANKER_FILE = "ranker.pt"
FEATURE_SCHEMA_FILE = "feature_schema.json"
REFERENCE_FILE = "reference_distributions.json"
ONLINE_USER_FILE = "online_features/user_features.parquet"
ONLINE_ITEM_FILE = "online_features/item_features.parquet"
# Every bundle must carry all of these: a bundle without, say, its ranker is not a smaller bundle but a broken one.
REQUIRED_FILES = (
    RETRIEVAL_FILE,
    INDEX_FILE,
    ITEM_IDS_FILE,
    EMBEDDINGS_FILE,
    RANKER_FILE,
    FEATURE_SCHEMA_FILE,
    REFERENCE_FILE,
    ONLINE_USER_FILE,
    ONLINE_ITEM_FILE,
)
# How many index rows to probe when checking that the index holds item_embeddings.npy (not another version's).
_INDEX_PROBE_ROWS = 64
_INDEX_PROBE_K = 10
_INDEX_PROBE_MIN_FOUND = 0.9


# The serving pointer in the artifacts directory: written by `streamrec promote` / `rollback`
# (models_ml.registry), read by the API (api.services.serving_bundle); its format and seal live in core.
ACTIVE_FILE = registry_seal.ACTIVE_FILE


class BundleMismatch(StreamRecError):
    """A bundle whose parts do not belong together (or to the current contract); the message says which."""


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` records about one bundle, plus the manifest's own sha256."""

    version: str
    created_at: str
    contract_sha256: str
    embedding_dim: int
    n_items: int
    index_kind: str
    index_recall_at_500: float
    metrics: Mapping[str, Any]
    files: Mapping[str, str]
    sizes: Mapping[str, int]
    sha256: str
    bundle_dir: Path
    candidate_sources: list[dict[str, Any]] = field(default_factory=list)  # name, k, files (empty: two-tower only)


@dataclass
class LoadedBundle:
    """A verified bundle with its model objects in memory, ready to serve."""

    manifest: Manifest
    two_tower: TwoTower  # eval mode
    ranker: Ranker  # eval mode
    index: faiss.Index
    item_ids: np.ndarray  # (n_items,) int64; row i of the index is item_ids[i]
    item_embeddings: np.ndarray  # (n_items, 128) float32
    feature_schema: Mapping[str, Any]
    reference_distributions: Any
    online_user_features: pa.Table
    online_item_features: pa.Table
    extras: dict[str, Any] = field(default_factory=dict)
    item_neighbours: pa.Table | None = None  # the item-to-item source's rows (None: a bundle without it)
    user_recent_items: pa.Table | None = None
    ease_weights: np.ndarray | None = None  # (n_items, n_items) float32 (None: a bundle without EASE)
    user_history: pa.Table | None = None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _bundle_files(bundle_dir: Path) -> list[str]:
    """Relative paths (posix) of every file in the bundle except the manifest and temp files."""
    names = []
    for path in sorted(bundle_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(bundle_dir).as_posix()
        if rel == MANIFEST_NAME or path.name.startswith(".manifest."):
            continue
        names.append(rel)
    return names


def write_manifest(bundle_dir: Path | str, meta: Mapping[str, Any]) -> str:
    """Hash every other file of the bundle and write `manifest.json` last; return the manifest's sha256.

    `meta` needs `contract_sha256`, `index_kind` and `index_recall_at_500`; `version` (default: the
    directory name, and it must equal it), `created_at` (default: now, UTC), `embedding_dim`
    (default 128), `n_items` (default: rows of item_ids.npy) and `metrics` (default {}) are optional.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleMismatch(f"bundle directory {bundle_dir} does not exist")
    missing_meta = [key for key in ("contract_sha256", "index_kind", "index_recall_at_500") if key not in meta]
    if missing_meta:
        raise BundleMismatch(f"write_manifest({bundle_dir}): meta lacks {', '.join(missing_meta)}")
    version = str(meta.get("version", bundle_dir.name))
    if version != bundle_dir.name:
        raise BundleMismatch(f"write_manifest: version {version!r} does not match directory name {bundle_dir.name!r}")
    names = _bundle_files(bundle_dir)
    missing = [name for name in REQUIRED_FILES if name not in names]
    if missing:
        raise BundleMismatch(f"bundle {bundle_dir}: cannot write manifest, missing {', '.join(missing)}")
    n_items = meta.get("n_items")
    if n_items is None:
        n_items = int(np.load(bundle_dir / ITEM_IDS_FILE, mmap_mode="r").shape[0])
    manifest = {
        "version": version,
        "created_at": str(meta.get("created_at") or datetime.now(UTC).replace(tzinfo=None).isoformat()),
        "contract_sha256": str(meta["contract_sha256"]),
        "embedding_dim": int(meta.get("embedding_dim", EMBEDDING_DIM)),
        "n_items": int(n_items),
        "index_kind": str(meta["index_kind"]),
        "index_recall_at_500": float(meta["index_recall_at_500"]),
        "metrics": dict(meta.get("metrics") or {}),
        "candidate_sources": list(meta.get("candidate_sources") or []),
        "files": {name: file_sha256(bundle_dir / name) for name in names},
        "sizes": {name: (bundle_dir / name).stat().st_size for name in names},
    }
    path = bundle_dir / MANIFEST_NAME
    write_json_atomically(path, manifest)
    return file_sha256(path)


def read_manifest(bundle_dir: Path | str) -> Manifest:
    """Parse `manifest.json` (no file checks); raise BundleMismatch if it is missing or malformed."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise BundleMismatch(f"bundle {bundle_dir}: no {MANIFEST_NAME} (an unfinished or foreign directory)")
    raw_bytes = path.read_bytes()
    try:
        raw = json.loads(raw_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleMismatch(f"{path}: not valid JSON ({exc})") from exc
    required = ("version", "created_at", "contract_sha256", "embedding_dim", "n_items", "index_kind", "files", "sizes")
    absent = [key for key in required if key not in raw] if isinstance(raw, dict) else list(required)
    if absent:
        raise BundleMismatch(f"{path}: manifest lacks {', '.join(absent)}")
    if not isinstance(raw["files"], dict) or not isinstance(raw["sizes"], dict):
        raise BundleMismatch(f"{path}: `files` and `sizes` must be objects mapping file name to sha256 / bytes")
    return Manifest(
        version=str(raw["version"]),
        created_at=str(raw["created_at"]),
        contract_sha256=str(raw["contract_sha256"]),
        embedding_dim=int(raw["embedding_dim"]),
        n_items=int(raw["n_items"]),
        index_kind=str(raw["index_kind"]),
        index_recall_at_500=float(raw.get("index_recall_at_500") or 0.0),
        metrics=dict(raw.get("metrics") or {}),
        files={str(k): str(v) for k, v in raw["files"].items()},
        sizes={str(k): int(v) for k, v in raw["sizes"].items()},
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        bundle_dir=bundle_dir,
        candidate_sources=[dict(source) for source in raw.get("candidate_sources") or [] if isinstance(source, dict)],
    )


def _check_files(manifest: Manifest) -> None:
    """Every listed file exists with the recorded size and sha256; required files are listed; nothing extra."""
    bundle_dir = manifest.bundle_dir
    unlisted_required = [name for name in REQUIRED_FILES if name not in manifest.files]
    if unlisted_required:
        raise BundleMismatch(f"bundle {bundle_dir}: manifest does not list {', '.join(unlisted_required)}")
    for name, expected_sha in sorted(manifest.files.items()):
        path = bundle_dir / name
        if not path.is_file():
            raise BundleMismatch(f"bundle {bundle_dir}: {name} is missing (listed in {MANIFEST_NAME})")
        if name not in manifest.sizes:
            raise BundleMismatch(f"bundle {bundle_dir}: {MANIFEST_NAME} has a sha256 but no size for {name}")
        size = path.stat().st_size
        if size != manifest.sizes[name]:
            raise BundleMismatch(
                f"bundle {bundle_dir}: {name} is {size} bytes, manifest says {manifest.sizes[name]} "
                "(truncated or replaced)"
            )
        actual_sha = file_sha256(path)
        if actual_sha != expected_sha:
            raise BundleMismatch(
                f"bundle {bundle_dir}: {name} sha256 {actual_sha[:16]}… does not match manifest {expected_sha[:16]}… "
                "(a file from another version or modified after training)"
            )
    extra = [name for name in _bundle_files(bundle_dir) if name not in manifest.files]
    if extra:
        raise BundleMismatch(f"bundle {bundle_dir}: {', '.join(extra)} not listed in {MANIFEST_NAME}")


def _load_checkpoint(path: Path) -> Mapping[str, Any]:
    """A torch checkpoint dict (tensors, config, names); weights_only so a bundle cannot run code."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for unreadable files
        raise BundleMismatch(f"{path}: not a readable torch checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(payload, Mapping):
        raise BundleMismatch(f"{path}: checkpoint is a {type(payload).__name__}, expected a dict")
    return payload


def _config_dim(path: Path, checkpoint: Mapping[str, Any]) -> int:
    config = checkpoint.get("config")
    if not isinstance(config, Mapping):
        raise BundleMismatch(f"{path}: checkpoint has no `config` dict")
    if "embedding_dim" not in config:
        raise BundleMismatch(f"{path}: config has no embedding_dim (the towers' output size)")
    return int(config["embedding_dim"])


def _check_contract(
    manifest: Manifest, contract: FeatureContract, retrieval: Mapping[str, Any], ranker: Mapping[str, Any]
) -> dict:
    """Manifest, both checkpoints and feature_schema.json were trained against the contract in force now."""
    bundle_dir = manifest.bundle_dir
    expected = contract.sha256
    if manifest.contract_sha256 != expected:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {MANIFEST_NAME} contract_sha256 {manifest.contract_sha256[:16]}… does not match "
            f"the current contract {expected[:16]}… (contracts/features.yml changed since training; retrain)"
        )
    for name, checkpoint in ((RETRIEVAL_FILE, retrieval), (RANKER_FILE, ranker)):
        actual = checkpoint.get("contract_sha256")
        if actual != expected:
            raise BundleMismatch(
                f"bundle {bundle_dir}: {name} contract_sha256 {str(actual)[:16]}… does not match "
                f"the current contract {expected[:16]}…"
            )
    try:
        schema = json.loads((bundle_dir / FEATURE_SCHEMA_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleMismatch(f"bundle {bundle_dir}: {FEATURE_SCHEMA_FILE} is not valid JSON ({exc})") from exc
    if schema.get("contract_sha256") != expected:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {FEATURE_SCHEMA_FILE} contract_sha256 {str(schema.get('contract_sha256'))[:16]}… "
            f"does not match the current contract {expected[:16]}…"
        )
    unknown = [f.get("name") for f in schema.get("features", []) if f.get("name") not in contract]
    if unknown:
        raise BundleMismatch(f"bundle {bundle_dir}: {FEATURE_SCHEMA_FILE} uses features not in the contract: {unknown}")
    return schema


def _check_shapes(manifest: Manifest, retrieval: Mapping[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """Embedding dimension and item counts agree across manifest, model config, embeddings, ids and index."""
    import faiss

    bundle_dir = manifest.bundle_dir
    if manifest.embedding_dim != EMBEDDING_DIM:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {MANIFEST_NAME} embedding_dim is {manifest.embedding_dim}, expected {EMBEDDING_DIM}"
        )
    config_dim = _config_dim(bundle_dir / RETRIEVAL_FILE, retrieval)
    if config_dim != EMBEDDING_DIM:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {RETRIEVAL_FILE} config output dimension is {config_dim}, expected {EMBEDDING_DIM}"
        )
    embeddings = np.load(bundle_dir / EMBEDDINGS_FILE)
    if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_DIM:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {EMBEDDINGS_FILE} has shape {embeddings.shape}, expected (n_items, {EMBEDDING_DIM})"
        )
    item_ids = np.load(bundle_dir / ITEM_IDS_FILE)
    if item_ids.ndim != 1 or not np.issubdtype(item_ids.dtype, np.integer):
        raise BundleMismatch(
            f"bundle {bundle_dir}: {ITEM_IDS_FILE} is {item_ids.dtype} {item_ids.shape}, expected a 1-d int64 array"
        )
    if np.unique(item_ids).size != item_ids.size:
        raise BundleMismatch(f"bundle {bundle_dir}: {ITEM_IDS_FILE} repeats item ids")
    try:
        index = faiss.read_index(str(bundle_dir / INDEX_FILE))
    except RuntimeError as exc:
        raise BundleMismatch(f"bundle {bundle_dir}: {INDEX_FILE} is not a readable FAISS index") from exc
    if index.d != EMBEDDING_DIM:
        raise BundleMismatch(f"bundle {bundle_dir}: {INDEX_FILE} dimension d={index.d}, expected {EMBEDDING_DIM}")
    counts = {
        f"{MANIFEST_NAME} n_items": manifest.n_items,
        f"{ITEM_IDS_FILE} length": int(item_ids.shape[0]),
        f"{EMBEDDINGS_FILE} rows": int(embeddings.shape[0]),
        f"{INDEX_FILE} ntotal": int(index.ntotal),
    }
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise BundleMismatch(f"bundle {bundle_dir}: item counts disagree: {detail}")
    _check_index_holds_embeddings(bundle_dir, index, embeddings.astype(np.float32, copy=False))
    return index, item_ids.astype(np.int64, copy=False), embeddings


def _check_index_holds_embeddings(bundle_dir: Path, index: Any, embeddings: np.ndarray) -> None:
    """Probe the index with a sample of its own embeddings: each should find its own row among the top hits.

    This catches an index built from other embeddings even when both have the same shape; sampling
    (and a tolerance) keeps it fast and fair to approximate indexes (HNSW/IVF).
    """
    n = embeddings.shape[0]
    if n == 0:
        return
    rows = np.unique(np.linspace(0, n - 1, num=min(_INDEX_PROBE_ROWS, n)).astype(np.int64))
    _, found = index.search(np.ascontiguousarray(embeddings[rows]), min(_INDEX_PROBE_K, n))
    hits = int(sum(int(row) in set(found[i].tolist()) for i, row in enumerate(rows)))
    if hits < _INDEX_PROBE_MIN_FOUND * len(rows):
        raise BundleMismatch(
            f"bundle {bundle_dir}: {INDEX_FILE} does not index {EMBEDDINGS_FILE}: only {hits}/{len(rows)} sampled "
            f"items find their own row in the top {_INDEX_PROBE_K} (index from another version?)"
        )


def _check_sources(manifest: Manifest, ranker: Mapping[str, Any], item_ids: np.ndarray) -> None:
    """Every candidate source's files are hashed in the manifest (so _check_files covered them), the item-to-item
    tables hold only catalogue items, and a ranker that reads a source's inputs has that source."""
    import pyarrow.parquet as pq

    from streamrec.models_ml.sources import NEIGHBOUR_SCORE, NEIGHBOURS_FILE, RECENT_ITEMS_FILE

    bundle_dir = manifest.bundle_dir
    names = {str(source.get("name")) for source in manifest.candidate_sources}
    for source in manifest.candidate_sources:
        for name in source.get("files") or []:
            if name not in manifest.files:
                raise BundleMismatch(
                    f"bundle {bundle_dir}: candidate source {source.get('name')} serves from {name}, "
                    f"which {MANIFEST_NAME} does not hash"
                )
    if NEIGHBOUR_SCORE.name in (ranker.get("feature_names") or []) and "item_neighbours" not in names:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {RANKER_FILE} reads the item-to-item source's inputs but {MANIFEST_NAME} "
            "lists no item_neighbours source"
        )
    if "ease" in names:
        from streamrec.models_ml.sources import EASE_WEIGHTS_FILE

        shape = np.load(bundle_dir / EASE_WEIGHTS_FILE, mmap_mode="r").shape
        if shape != (len(item_ids), len(item_ids)):
            raise BundleMismatch(
                f"bundle {bundle_dir}: {EASE_WEIGHTS_FILE} has shape {shape}, "
                f"expected ({len(item_ids)}, {len(item_ids)}) like {ITEM_IDS_FILE}"
            )
    if "item_neighbours" in names:
        catalogue = set(np.asarray(item_ids).tolist())
        for name, columns in ((NEIGHBOURS_FILE, ("item_id", "neighbour_item_id")), (RECENT_ITEMS_FILE, ("item_id",))):
            try:
                table = pq.read_table(bundle_dir / name)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise BundleMismatch(f"bundle {bundle_dir}: {name} is not a readable Parquet file ({exc})") from exc
            for column in columns:
                if column not in table.column_names:
                    raise BundleMismatch(f"bundle {bundle_dir}: {name} has no {column} column")
                unknown = set(table.column(column).to_pylist()) - catalogue
                if unknown:
                    raise BundleMismatch(
                        f"bundle {bundle_dir}: {name} {column} holds {len(unknown)} items not in {ITEM_IDS_FILE} "
                        f"(e.g. {min(unknown)}): the source and the index are not from one version"
                    )


def _verify(
    bundle_dir: Path,
    expected_version: str | None,
    contract: FeatureContract | None,
    expected_manifest_sha256: str | None,
) -> tuple[Manifest, dict[str, Any]]:
    if not bundle_dir.is_dir():
        raise BundleMismatch(f"bundle directory {bundle_dir} does not exist")
    manifest = read_manifest(bundle_dir)
    if expected_manifest_sha256 is not None and manifest.sha256 != expected_manifest_sha256:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {MANIFEST_NAME} sha256 {manifest.sha256[:16]}… does not match the registered "
            f"{expected_manifest_sha256[:16]}… (manifest rewritten after registration)"
        )
    if manifest.version != bundle_dir.name:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {MANIFEST_NAME} says version {manifest.version!r} but the directory is "
            f"{bundle_dir.name!r}"
        )
    if expected_version is not None and manifest.version != expected_version:
        raise BundleMismatch(
            f"bundle {bundle_dir}: {MANIFEST_NAME} says version {manifest.version!r}, expected {expected_version!r}"
        )
    _check_files(manifest)
    retrieval = _load_checkpoint(bundle_dir / RETRIEVAL_FILE)
    ranker = _load_checkpoint(bundle_dir / RANKER_FILE)
    schema = _check_contract(manifest, contract or load_contract(), retrieval, ranker)
    index, item_ids, embeddings = _check_shapes(manifest, retrieval)
    _check_sources(manifest, ranker, item_ids)
    return manifest, {"index": index, "item_ids": item_ids, "item_embeddings": embeddings, "feature_schema": schema}


def verify_bundle(
    bundle_dir: Path | str,
    expected_version: str | None = None,
    contract: FeatureContract | None = None,
    *,
    expected_manifest_sha256: str | None = None,
) -> Manifest:
    """Check that a bundle is whole, untampered and consistent; return its manifest or raise BundleMismatch.

    Checked: every manifest file exists with its size and sha256 and nothing unlisted is present;
    the manifest version equals the directory name (and `expected_version`); the contract sha256
    in the manifest, both checkpoints and feature_schema.json equals the current contract's (or
    `contract`'s); the embedding dimension is 128 in the manifest, the retrieval config, the
    embeddings and the index; index ntotal == len(item_ids) == embedding rows == n_items; and the
    index holds these embeddings. `expected_manifest_sha256` (the registry's record) also pins the
    manifest itself.
    """
    manifest, _ = _verify(Path(bundle_dir), expected_version, contract, expected_manifest_sha256)
    return manifest


def load_bundle(
    bundle_dir: Path | str,
    contract: FeatureContract | None = None,
    *,
    expected_version: str | None = None,
    expected_manifest_sha256: str | None = None,
) -> LoadedBundle:
    """Verify a bundle, then load its models, index, ids, feature schema, reference and online features."""
    import pyarrow.parquet as pq

    from streamrec.models_ml.model import load_two_tower
    from streamrec.models_ml.ranker import load_ranker
    from streamrec.models_ml.sources import EASE_WEIGHTS_FILE, NEIGHBOURS_FILE, RECENT_ITEMS_FILE, USER_HISTORY_FILE

    bundle_dir = Path(bundle_dir)
    manifest, parts = _verify(bundle_dir, expected_version, contract, expected_manifest_sha256)
    has_neighbours = any(source.get("name") == "item_neighbours" for source in manifest.candidate_sources)
    has_ease = any(source.get("name") == "ease" for source in manifest.candidate_sources)
    return LoadedBundle(
        manifest=manifest,
        two_tower=load_two_tower(bundle_dir / RETRIEVAL_FILE),
        ranker=load_ranker(bundle_dir / RANKER_FILE),
        index=parts["index"],
        item_ids=parts["item_ids"],
        item_embeddings=parts["item_embeddings"],
        feature_schema=parts["feature_schema"],
        reference_distributions=json.loads((bundle_dir / REFERENCE_FILE).read_text()),
        online_user_features=pq.read_table(bundle_dir / ONLINE_USER_FILE),
        online_item_features=pq.read_table(bundle_dir / ONLINE_ITEM_FILE),
        item_neighbours=pq.read_table(bundle_dir / NEIGHBOURS_FILE) if has_neighbours else None,
        user_recent_items=pq.read_table(bundle_dir / RECENT_ITEMS_FILE) if has_neighbours else None,
        ease_weights=np.load(bundle_dir / EASE_WEIGHTS_FILE) if has_ease else None,
        user_history=pq.read_table(bundle_dir / USER_HISTORY_FILE) if has_ease else None,
    )
