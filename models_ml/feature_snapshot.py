"""The online feature snapshot: users' latest contract features, apart from the model bundle, memory-mappable.

`streamrec materialize` (streamrec.batch.materialize) writes one from the warehouse; the API maps it and
swaps it in without a restart (api/services/snapshot_state.py). Layout of `<home>/snapshots/<snapshot_id>/`:

    user_features.arrow   Arrow IPC file, uncompressed: `user_id` (int64, sorted, unique) and every user
                          feature of the contract ENCODED as the models read it (models_ml.tensors.to_tensors:
                          float32 with NaN for null, codes as int64 index into the contract's list)
    manifest.json         snapshot_id, as_of, contract_sha256, n_users, the file's sha256 and size; written last

Encoded and uncompressed so that a worker maps the file (`pa.memory_map`) and hands the columns to torch
without a copy: N serving workers on one machine share the page cache's one copy of the snapshot instead
of holding N private arrays. `<home>/snapshots/CURRENT.json` names the snapshot to serve (written by
materialize after registering it in ops.feature_snapshots, atomically).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch

from streamrec.contracts.schema import FeatureContract, load_contract
from streamrec.core.errors import StreamRecError

USER_FILE = "user_features.arrow"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "CURRENT.json"


class SnapshotRefused(StreamRecError):
    """A snapshot that fails verification (hash, contract, columns, values); the serving one stays."""


def snapshot_id_for(as_of: datetime, contract_sha256: str) -> str:
    """`fs-20261201T000000-1a2b3c4d`: versioned by as_of and contract hash, sortable by as_of."""
    return f"fs-{as_of.strftime('%Y%m%dT%H%M%S')}-{contract_sha256[:8]}"


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_snapshot(
    directory: Path,
    columns: Mapping[str, torch.Tensor],
    *,
    snapshot_id: str,
    as_of: datetime,
    contract: FeatureContract,
) -> dict:
    """Write `user_features.arrow` then `manifest.json` into `directory` (which must be new); return the manifest.

    `columns` are encoded model inputs (to_tensors) by name plus `user_id`, already sorted by user_id.
    """
    directory.mkdir(parents=True, exist_ok=False)
    names = ["user_id", *(f.name for f in contract.for_entity("user"))]
    table = pa.table({name: pa.array(columns[name].numpy()) for name in names})
    path = directory / USER_FILE
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))  # one batch: one contiguous column each
    manifest = {
        "snapshot_id": snapshot_id,
        "as_of": as_of.isoformat(),
        "contract_sha256": contract.sha256,
        "n_users": table.num_rows,
        "files": {USER_FILE: _sha256(path)},
        "sizes": {USER_FILE: path.stat().st_size},
    }
    from streamrec.core.atomic import write_json_atomically

    write_json_atomically(directory / MANIFEST_FILE, manifest)
    return manifest


@dataclass(frozen=True, eq=False)
class FeatureSnapshot:
    """A verified, mapped snapshot; the arrays are views of the mapped file (read-only, shared across processes)."""

    snapshot_id: str
    as_of: datetime
    contract_sha256: str
    manifest_sha256: str
    user_ids: np.ndarray  # (n_users,) int64 sorted
    user_features: Mapping[str, torch.Tensor]  # name -> (n_users,) encoded
    size_bytes: int

    @property
    def n_users(self) -> int:
        """Users in the snapshot."""
        return len(self.user_ids)


def read_manifest(directory: Path) -> tuple[dict, str]:
    """(manifest, its sha256); SnapshotRefused naming the file when it is missing or not a manifest."""
    path = directory / MANIFEST_FILE
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
        for key in ("snapshot_id", "as_of", "contract_sha256", "files"):
            if key not in manifest:
                raise ValueError(f"no {key}")
    except (OSError, ValueError) as exc:
        raise SnapshotRefused(f"snapshot {directory}: {MANIFEST_FILE} unreadable ({exc})") from exc
    import hashlib

    return manifest, hashlib.sha256(raw).hexdigest()


def load_snapshot(
    directory: Path,
    *,
    contract: FeatureContract | None = None,
    expected_contract_sha256: str | None = None,
    expected_manifest_sha256: str | None = None,
) -> FeatureSnapshot:
    """Verify (manifest hash, file hash, contract hash, columns, dtypes, codes, ranges) and map a snapshot."""
    contract = contract or load_contract()
    manifest, manifest_sha = read_manifest(directory)
    where = f"snapshot {manifest.get('snapshot_id')}"
    if expected_manifest_sha256 is not None and manifest_sha != expected_manifest_sha256:
        raise SnapshotRefused(f"{where}: manifest sha256 {manifest_sha[:12]} is not the registered one")
    if manifest["contract_sha256"] != contract.sha256:
        raise SnapshotRefused(
            f"{where}: written for contract {manifest['contract_sha256'][:12]}, the serving contract is "
            f"{contract.sha256[:12]}"
        )
    if expected_contract_sha256 is not None and manifest["contract_sha256"] != expected_contract_sha256:
        raise SnapshotRefused(
            f"{where}: contract {manifest['contract_sha256'][:12]} is not the serving bundle's "
            f"{expected_contract_sha256[:12]}"
        )
    path = directory / USER_FILE
    expected_file = manifest["files"].get(USER_FILE)
    if not path.is_file() or expected_file is None:
        raise SnapshotRefused(f"{where}: {USER_FILE} is missing")
    actual = _sha256(path)  # reads the file once: it is in the page cache for the mapping below
    if actual != expected_file:
        raise SnapshotRefused(f"{where}: {USER_FILE} sha256 {actual[:12]} does not match its manifest")
    try:
        table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise SnapshotRefused(f"{where}: {USER_FILE} is not an Arrow IPC file ({exc})") from exc
    features = contract.for_entity("user")
    wanted = ["user_id", *(f.name for f in features)]
    if sorted(table.column_names) != sorted(wanted):
        extra = sorted(set(table.column_names) - set(wanted))
        missing = sorted(set(wanted) - set(table.column_names))
        raise SnapshotRefused(f"{where}: columns differ from the contract (missing {missing}, extra {extra})")
    arrays: dict[str, np.ndarray] = {}
    for name in wanted:
        column = table.column(name)
        if column.num_chunks > 1 or column.null_count:
            raise SnapshotRefused(f"{where}: column {name} has {column.num_chunks} chunks / nulls")
        arrays[name] = column.chunk(0).to_numpy(zero_copy_only=True) if column.num_chunks else np.zeros(0)
    user_ids = arrays.pop("user_id")
    if user_ids.dtype != np.int64 or (len(user_ids) > 1 and not (np.diff(user_ids) > 0).all()):
        raise SnapshotRefused(f"{where}: user_id is not int64 sorted and unique")
    for feature in features:
        values = arrays[feature.name]
        if feature.codes:
            bad = values.dtype != np.int64 or (len(values) and (values.min() < 0 or values.max() >= len(feature.codes)))
        else:
            nulls = np.isnan(values) if values.dtype == np.float32 else np.zeros(len(values), dtype=bool)
            finite = values[~nulls]
            # Compared in float32, the dtype stored: a bound such as 0.1 rounds the same way as its values.
            low = None if feature.min is None else np.float32(feature.min)
            high = None if feature.max is None else np.float32(feature.max)
            bad = values.dtype != np.float32 or bool(
                (not feature.nullable and nulls.any())
                or (
                    len(finite)
                    and ((low is not None and finite.min() < low) or (high is not None and finite.max() > high))
                )
            )
        if bad:
            raise SnapshotRefused(f"{where}: column {feature.name} violates the contract (dtype {values.dtype})")
    with warnings.catch_warnings():
        # The mapped arrays are read-only; serving only reads rows from them.
        warnings.simplefilter("ignore", UserWarning)
        tensors = {name: torch.from_numpy(values) for name, values in arrays.items()}
    return FeatureSnapshot(
        snapshot_id=str(manifest["snapshot_id"]),
        as_of=datetime.fromisoformat(manifest["as_of"]),
        contract_sha256=str(manifest["contract_sha256"]),
        manifest_sha256=manifest_sha,
        user_ids=user_ids,
        user_features=tensors,
        size_bytes=int(path.stat().st_size),
    )
