"""`streamrec materialize`: write the online feature snapshot from the warehouse, register it, point the API at it.

The snapshot (models_ml/feature_snapshot.py) holds every user's contract features at one as_of (the
latest by default), encoded as the models read them, in a memory-mappable Arrow IPC file. It is written
into a temporary directory and published by rename, then recorded in ops.feature_snapshots, and only
then named by `snapshots/CURRENT.json`, so the API (which reads CURRENT.json on `POST /v1/admin/snapshot`
or when it watches) never sees a half-written or unregistered snapshot. The model bundle is untouched:
features get fresher without retraining.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

SNAPSHOTS_DIR = "snapshots"


@dataclass(frozen=True)
class Materialized:
    """What one run wrote."""

    snapshot_id: str
    as_of: datetime
    n_users: int
    size_bytes: int
    path: Path
    seconds: float
    created: bool  # False when this snapshot already existed (the pointer was rewritten only)


def snapshots_dir(settings: Settings) -> Path:
    """`<home>/snapshots`."""
    return settings.home / SNAPSHOTS_DIR


def materialize(settings: Settings, as_of: datetime | None = None) -> Materialized:
    """Snapshot users' features at `as_of` (default: the latest), register it and make it CURRENT."""
    import numpy as np

    from streamrec.contracts.schema import ContractViolation, load_contract
    from streamrec.core.atomic import write_json_atomically
    from streamrec.core.warehouse import connect, fetchall, scalar, table_exists, transaction
    from streamrec.models_ml.feature_snapshot import CURRENT_FILE, read_manifest, snapshot_id_for, write_snapshot
    from streamrec.models_ml.tensors import to_tensors, validate_features

    started = time.perf_counter()
    contract = load_contract()
    features = contract.for_entity("user")
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: run `streamrec build` first")
    with connect(settings) as con:
        if not table_exists(con, "features", "user_features"):
            raise StreamRecError("features.user_features does not exist: run `streamrec build` first")
        if not table_exists(con, "ops", "feature_snapshots"):
            raise StreamRecError("ops.feature_snapshots does not exist: run `streamrec init` (alembic upgrade head)")
        if as_of is None:
            as_of = scalar(con, "select max(as_of) from features.user_features")
            if as_of is None:
                raise StreamRecError("features.user_features is empty: nothing to materialize")
        elif not scalar(con, "select count(*) from features.user_features where as_of = ?", [as_of]):
            raise StreamRecError(f"features.user_features has no rows at as_of {as_of.isoformat()}")
        columns = ", ".join(["user_id", *(f.name for f in features)])
        table = con.sql(
            f"select {columns} from features.user_features where as_of = ? order by user_id", params=[as_of]
        ).to_arrow_table()
        raw = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
        try:
            validate_features(raw, features, f"features.user_features at {as_of.isoformat()}")
        except ContractViolation as exc:
            raise StreamRecError(str(exc)) from exc
        if len(raw["user_id"]) > 1 and not (np.diff(raw["user_id"].astype(np.int64)) > 0).all():
            raise StreamRecError(f"features.user_features repeats a user_id at as_of {as_of.isoformat()}")
        snapshot_id = snapshot_id_for(as_of, contract.sha256)
        root = snapshots_dir(settings)
        root.mkdir(parents=True, exist_ok=True)
        final = root / snapshot_id
        registered = fetchall(
            con, "select manifest_sha256 from ops.feature_snapshots where snapshot_id = ?", [snapshot_id]
        )
        created = not final.exists()
        if created:
            tmp = root / f".{snapshot_id}.{time.time_ns()}.tmp"
            try:
                manifest = write_snapshot(
                    tmp,
                    to_tensors(raw, features, keys=("user_id",)),
                    snapshot_id=snapshot_id,
                    as_of=as_of,
                    contract=contract,
                )
                tmp.rename(final)  # publish by rename: the snapshot directory appears whole or not at all
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        manifest, manifest_sha = read_manifest(final)
        if registered and registered[0][0] != manifest_sha:
            raise StreamRecError(
                f"snapshot {snapshot_id} is registered with another manifest ({registered[0][0][:12]}, on disk "
                f"{manifest_sha[:12]}): remove {final} and materialize again"
            )
        size = int(sum(manifest["sizes"].values()))
        if not registered:
            with transaction(con):
                con.execute(
                    "insert into ops.feature_snapshots (snapshot_id, created_at, as_of, contract_sha256, "
                    "manifest_sha256, snapshot_path, n_users, size_bytes) values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        snapshot_id,
                        datetime.now(UTC).replace(tzinfo=None),
                        as_of,
                        contract.sha256,
                        manifest_sha,
                        f"{SNAPSHOTS_DIR}/{snapshot_id}",
                        int(manifest["n_users"]),
                        size,
                    ],
                )
    write_json_atomically(
        root / CURRENT_FILE,
        {"snapshot_id": snapshot_id, "manifest_sha256": manifest_sha, "path": snapshot_id, "as_of": as_of},
    )
    return Materialized(
        snapshot_id=snapshot_id,
        as_of=as_of,
        n_users=int(manifest["n_users"]),
        size_bytes=size,
        path=final,
        seconds=time.perf_counter() - started,
        created=created,
    )
