"""Serving from a materialized feature snapshot: read `snapshots/CURRENT.json`, verify, compose with a bundle.

A snapshot (models_ml/feature_snapshot.py) replaces only the user side of a `ServingBundle`: its sorted
user ids and encoded user features. `with_snapshot` returns a new frozen bundle that shares everything
else (models, index, item arrays) with the one it was made from, so routing still hands each request
one object, and a request is served wholly by one bundle and one snapshot. The old snapshot's mapping is
released when the last request holding the old bundle object finishes.

Users the snapshot has but the bundle never saw are served personalised from their fresh features
(the id embedding falls back to the tower's unknown-id row); users the bundle knew but the snapshot
lacks are served the cold-start list. Both are counted when the snapshot is applied
(`SnapshotCoverage`, in the admin answer and in /metrics) and every request logs the snapshot it read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from streamrec.api.services.serving_bundle import ServingBundle
from streamrec.models_ml.feature_snapshot import (
    CURRENT_FILE,
    FeatureSnapshot,
    SnapshotRefused,
    load_snapshot,
)

SNAPSHOTS_DIR = "snapshots"


@dataclass(frozen=True)
class SnapshotPointer:
    """What CURRENT.json names."""

    snapshot_id: str
    manifest_sha256: str
    directory: Path


@dataclass(frozen=True)
class SnapshotCoverage:
    """How a snapshot's users match the bundle's."""

    snapshot_users: int
    bundle_users: int
    only_in_snapshot: int  # served from fresh features with the unknown-id embedding
    only_in_bundle: int  # served cold start until a snapshot has them


def snapshots_dir(home: Path) -> Path:
    """`<home>/snapshots` (streamrec.batch.materialize writes there)."""
    return home / SNAPSHOTS_DIR


def read_current(home: Path) -> SnapshotPointer | None:
    """CURRENT.json, or None when nothing was materialized; SnapshotRefused naming the file when it is malformed."""
    path = snapshots_dir(home) / CURRENT_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        pointer = SnapshotPointer(
            snapshot_id=str(raw["snapshot_id"]),
            manifest_sha256=str(raw["manifest_sha256"]),
            directory=snapshots_dir(home) / str(raw["path"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotRefused(f"{path}: not a snapshot pointer ({exc})") from exc
    if pointer.directory.resolve().parent != snapshots_dir(home).resolve():
        raise SnapshotRefused(f"{path}: path {raw['path']!r} is not a directory of {snapshots_dir(home)}")
    return pointer


def load_current(home: Path, bundle: ServingBundle) -> FeatureSnapshot | None:
    """Load and verify what CURRENT.json names against the contract and `bundle`'s contract hash."""
    pointer = read_current(home)
    if pointer is None:
        return None
    return load_snapshot(
        pointer.directory,
        expected_contract_sha256=bundle.contract_sha256,
        expected_manifest_sha256=pointer.manifest_sha256,
    )


def with_snapshot(bundle: ServingBundle, snapshot: FeatureSnapshot) -> tuple[ServingBundle, SnapshotCoverage]:
    """`bundle` with its user side replaced by `snapshot`'s (refused when their contracts differ)."""
    if snapshot.contract_sha256 != bundle.contract_sha256:
        raise SnapshotRefused(
            f"snapshot {snapshot.snapshot_id}: contract {snapshot.contract_sha256[:12]} is not bundle "
            f"{bundle.version}'s {bundle.contract_sha256[:12]}"
        )
    own = bundle.bundle_user_ids if bundle.bundle_user_ids is not None else bundle.user_ids
    coverage = SnapshotCoverage(
        snapshot_users=snapshot.n_users,
        bundle_users=len(own),
        only_in_snapshot=int(np.count_nonzero(~np.isin(snapshot.user_ids, own, assume_unique=True))),
        only_in_bundle=int(np.count_nonzero(~np.isin(own, snapshot.user_ids, assume_unique=True))),
    )
    composed = replace(
        bundle,
        user_ids=snapshot.user_ids,
        user_features=snapshot.user_features,
        snapshot_id=snapshot.snapshot_id,
        snapshot_as_of=snapshot.as_of.isoformat(),
        bundle_user_ids=own,
    )
    return composed, coverage
