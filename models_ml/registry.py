"""The model registry: which bundles exist, which one serves, and who changed that, when and why.

The warehouse is the record: `ops.model_versions` and `ops.bundle_files` describe each registered
bundle, and `ops.promotions` is an append-only log whose latest row is the serving version.
`artifacts/ACTIVE.json` is a projection of that log for the API (which never opens the warehouse):
it is rewritten atomically after every change and rebuilt from the log whenever it disagrees, so a
crash between the commit and the file write heals on the next promote, rollback, `versions` or
`active_version`. A bundle is verified (hashes, shapes, contract, registered manifest) before it
may serve; a bundle that fails verification changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from streamrec.core.errors import StreamRecError
from streamrec.core.registry_seal import registration_path, sealed_payload, write_sealed
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, open_duckdb, table_exists, transaction, writer_lock
from streamrec.models_ml.bundle import ACTIVE_FILE, BundleMismatch, Manifest, verify_bundle

_POINTER_LOCK = ".ACTIVE.lock"
_OPS_TABLES = ("model_versions", "bundle_files", "promotions")


@dataclass(frozen=True)
class PromotionRecord:
    """One row of ops.promotions."""

    promotion_id: str
    version: str
    previous_version: str | None
    action: str
    promoted_at: datetime
    promoted_by: str | None
    reason: str


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # warehouse timestamps are naive UTC


def _require_ops(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    missing = [t for t in _OPS_TABLES if not table_exists(con, "ops", t)]
    if missing:
        raise StreamRecError(
            f"{settings.warehouse_path} has no ops.{', ops.'.join(missing)}: run `streamrec init` first"
        )


def _require_warehouse(settings: Settings) -> None:
    # Opening a missing file read-write would silently create an empty warehouse.
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: run `streamrec init` first")


def _stored_path(settings: Settings, bundle_dir: Path) -> str:
    """Bundles under artifacts/ are stored relative to it, so a copied or moved STREAMREC_HOME still finds them."""
    try:
        return bundle_dir.relative_to(settings.artifacts_dir.resolve()).as_posix()
    except ValueError:
        return str(bundle_dir)


def bundle_path(settings: Settings, stored: str) -> Path:
    """The directory of a registered bundle from its ops.model_versions.bundle_path."""
    path = Path(stored)
    return path if path.is_absolute() else settings.artifacts_dir / path


def _latest_promotion(con: duckdb.DuckDBPyConnection) -> PromotionRecord | None:
    rows = fetchall(
        con,
        "select promotion_id, version, previous_version, action, promoted_at, promoted_by, reason "
        "from ops.promotions order by promoted_at desc, promotion_id desc limit 1",
    )
    return PromotionRecord(*rows[0]) if rows else None


def _version_row(con: duckdb.DuckDBPyConnection, version: str) -> tuple[str, str]:
    """(bundle_path, manifest_sha256) of a registered version; unknown versions name the known ones."""
    rows = fetchall(con, "select bundle_path, manifest_sha256 from ops.model_versions where version = ?", [version])
    if rows:
        return rows[0]
    known = [r[0] for r in fetchall(con, "select version from ops.model_versions order by created_at, version")]
    if not known:
        raise StreamRecError(f"unknown version {version!r}: no versions are registered yet (run `streamrec train`)")
    raise StreamRecError(f"unknown version {version!r}; registered versions: {', '.join(known)}")


def _verify_registered(settings: Settings, version: str, stored_path: str, manifest_sha256: str) -> Manifest:
    """Verify a registered bundle against its files and the manifest the registry recorded for it."""
    try:
        return verify_bundle(
            bundle_path(settings, stored_path), expected_version=version, expected_manifest_sha256=manifest_sha256
        )
    except BundleMismatch as exc:
        raise BundleMismatch(f"refusing to serve {version}: {exc}") from exc


def _pointer_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """What ACTIVE.json must say according to the warehouse (None: nothing has been promoted)."""
    rows = fetchall(
        con,
        "select p.version, m.manifest_sha256, p.promoted_at, p.promotion_id, m.bundle_path "
        "from ops.promotions as p join ops.model_versions as m on m.version = p.version "
        "order by p.promoted_at desc, p.promotion_id desc limit 1",
    )
    if not rows:
        return None
    version, manifest_sha256, promoted_at, promotion_id, stored = rows[0]
    return {
        "version": version,
        "manifest_sha256": manifest_sha256,
        "promoted_at": promoted_at.isoformat(),
        "promotion_id": promotion_id,
        "bundle_path": stored,
    }


@contextmanager
def _pointer_lock(settings: Settings) -> Iterator[None]:
    # Serialises ACTIVE.json writers so a slow reconcile can never overwrite a newer promotion's pointer.
    settings.ensure()
    with open(settings.artifacts_dir / _POINTER_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_active_pointer(settings: Settings) -> dict[str, Any] | None:
    """ACTIVE.json as the API sees it (no warehouse access); None when absent."""
    path = settings.artifacts_dir / ACTIVE_FILE
    if not path.is_file():
        return None
    try:
        pointer = json.loads(path.read_bytes())
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StreamRecError(f"{path} is not valid JSON ({exc}); run `streamrec versions` to rewrite it") from exc
    if not isinstance(pointer, dict):
        raise StreamRecError(f"{path} is not a JSON object; run `streamrec versions` to rewrite it")
    return pointer


def _write_pointer_unlocked(settings: Settings, state: Mapping[str, Any] | None) -> None:
    path = settings.artifacts_dir / ACTIVE_FILE
    try:
        current = read_active_pointer(settings)
    except StreamRecError:
        current = {"unreadable": True}
    if state is None:
        path.unlink(missing_ok=True)
        return
    sealed = sealed_payload(settings.artifacts_dir, state)  # the API checks the seal (core.registry_seal)
    if current != sealed:
        write_sealed(path, settings.artifacts_dir, state)


def _write_registrations(settings: Settings, rows: list[tuple[str, str, str]]) -> None:
    """Write (or repair) the sealed registered/<version>.json record of each (version, manifest, bundle_path)."""
    for version, manifest_sha256, stored in rows:
        fields = {"version": version, "manifest_sha256": manifest_sha256, "bundle_path": stored}
        path = registration_path(settings.artifacts_dir, version)
        try:
            current = json.loads(path.read_bytes()) if path.exists() else None
        except (ValueError, OSError):
            current = None
        if current != sealed_payload(settings.artifacts_dir, fields):
            write_sealed(path, settings.artifacts_dir, fields)


def sync_active_pointer(settings: Settings) -> dict[str, Any] | None:
    """Rebuild ACTIVE.json from ops.promotions if it disagrees (or is missing); return what it now says."""
    with _pointer_lock(settings):
        with connect(settings, read_only=True) as con:
            _require_ops(con, settings)
            state = _pointer_state(con)
            registered = fetchall(con, "select version, manifest_sha256, bundle_path from ops.model_versions")
        _write_registrations(settings, registered)
        _write_pointer_unlocked(settings, state)
    return state


def _publish_pointer(settings: Settings, state: Mapping[str, Any] | None, what: str) -> None:
    """Write ACTIVE.json after a committed change; a failure here is healed by the next reconcile."""
    try:
        with _pointer_lock(settings):
            _write_pointer_unlocked(settings, state)
    except OSError as exc:
        raise StreamRecError(
            f"{what} is recorded in {settings.warehouse_path}, but {settings.artifacts_dir / ACTIVE_FILE} could not "
            f"be written ({exc}); the next promote, rollback or `streamrec versions` rebuilds it from the warehouse"
        ) from exc


def register(settings: Settings, bundle_dir: Path | str) -> None:
    """Record a verified bundle in ops.model_versions and ops.bundle_files (one transaction; idempotent)."""
    bundle_dir = Path(bundle_dir).resolve()
    manifest = verify_bundle(bundle_dir)
    _require_warehouse(settings)
    with connect(settings) as con:
        _require_ops(con, settings)
        existing = fetchall(con, "select manifest_sha256 from ops.model_versions where version = ?", [manifest.version])
        if existing:
            if existing[0][0] == manifest.sha256:
                return
            raise StreamRecError(
                f"version {manifest.version!r} is already registered with another manifest "
                f"({existing[0][0][:16]}…, this one {manifest.sha256[:16]}…): use a new version tag"
            )
        with transaction(con):
            con.execute(
                "insert into ops.model_versions (version, created_at, contract_sha256, manifest_sha256, bundle_path, "
                "embedding_dim, n_items, index_kind, index_recall_at_500, metrics_json, notes) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    manifest.version,
                    datetime.fromisoformat(manifest.created_at).replace(tzinfo=None),
                    manifest.contract_sha256,
                    manifest.sha256,
                    _stored_path(settings, bundle_dir),
                    manifest.embedding_dim,
                    manifest.n_items,
                    manifest.index_kind,
                    manifest.index_recall_at_500,
                    json.dumps(manifest.metrics, sort_keys=True),
                    None,
                ],
            )
            con.executemany(
                "insert into ops.bundle_files (version, file_name, sha256, size_bytes) values (?, ?, ?, ?)",
                [[manifest.version, name, sha, manifest.sizes[name]] for name, sha in sorted(manifest.files.items())],
            )
    # The API's (sealed) copy of the row, so a canary may load this version; rewritten by `versions` if lost.
    with _pointer_lock(settings):
        _write_registrations(settings, [(manifest.version, manifest.sha256, _stored_path(settings, bundle_dir))])


def _record(
    con: duckdb.DuckDBPyConnection,
    version: str,
    previous: PromotionRecord | None,
    action: str,
    by: str,
    reason: str,
) -> None:
    """Append one ops.promotions row in its own transaction, strictly after the previous one in time."""
    now = _utcnow()
    if previous is not None and now <= previous.promoted_at:
        now = previous.promoted_at + timedelta(microseconds=1)  # a clock step back must not reorder the log
    with transaction(con):
        con.execute(
            "insert into ops.promotions (promotion_id, version, previous_version, action, promoted_at, "
            "promoted_by, reason) values (?, ?, ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, version, previous.version if previous else None, action, now, by, reason],
        )


def _who(by: str | None) -> str:
    return by or os.environ.get("USER") or "unknown"


def _change_serving(settings: Settings, target: str | None, action: str, by: str, reason: str) -> str:
    """Verify, record and publish a promotion (target given) or a rollback (target None: the previous version)."""
    if not reason.strip():
        raise StreamRecError(f"a {action} needs a reason (--reason)")
    _require_warehouse(settings)
    with writer_lock(settings):
        con = open_duckdb(settings.warehouse_path)
        try:
            _require_ops(con, settings)
            current = _latest_promotion(con)
            if action == "rollback":
                if current is None:
                    raise StreamRecError("nothing has been promoted yet: there is no serving version to roll back")
                if current.previous_version is None:
                    raise StreamRecError(
                        f"{current.version} is the first promoted version: there is no previous version to roll back to"
                    )
                target = current.previous_version
            assert target is not None
            stored, manifest_sha256 = _version_row(con, target)
            if current is not None and current.version == target:
                since = f"{current.promoted_at:%Y-%m-%d %H:%M:%S} UTC"
                message = f"{target} is already serving (since {since}); nothing changed"
            else:
                _verify_registered(settings, target, stored, manifest_sha256)
                _record(con, target, current, action, by, reason)
                was = current.version if current else "nothing"
                verb = "promoted" if action == "promote" else "rolled back to"
                message = f"{verb} {target} (was {was}) by {by}: {reason}"
            state = _pointer_state(con)
        finally:
            con.close()
        # Still under the writer lock: no other promotion can commit before this pointer is written.
        _publish_pointer(settings, state, f"{action} of {target}")
    return message


def promote(settings: Settings, version: str, by: str | None = None, reason: str = "manual promotion") -> str:
    """Make `version` the serving version: verify its bundle, record who/when/why, then rewrite ACTIVE.json."""
    return _change_serving(settings, version, "promote", _who(by), reason)


def rollback(settings: Settings, by: str | None = None, reason: str = "manual rollback") -> str:
    """Serve the version that served before the current one (the current promotion's previous_version).

    A rollback is itself a row in the log, so rolling back twice returns to where you started.
    """
    return _change_serving(settings, None, "rollback", _who(by), reason)


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Registered versions, oldest first, with which one serves (also reconciles ACTIVE.json)."""
    with connect(settings, read_only=True) as con:
        _require_ops(con, settings)
        rows = fetchall(
            con,
            "select version, created_at, index_kind, index_recall_at_500, contract_sha256, n_items, manifest_sha256, "
            "bundle_path, metrics_json from ops.model_versions order by created_at, version",
        )
    state = sync_active_pointer(settings)
    serving = state["version"] if state else None
    keys = (
        "version",
        "created_at",
        "index_kind",
        "index_recall_at_500",
        "contract_sha256",
        "n_items",
        "manifest_sha256",
        "bundle_path",
    )
    result = []
    for row in rows:
        item = dict(zip(keys, row[:-1], strict=True))
        item["metrics"] = json.loads(row[-1]) if row[-1] else {}
        item["serving"] = row[0] == serving
        result.append(item)
    return result


def promotion_history(settings: Settings) -> list[PromotionRecord]:
    """Every promotion and rollback, oldest first."""
    with connect(settings, read_only=True) as con:
        _require_ops(con, settings)
        rows = fetchall(
            con,
            "select promotion_id, version, previous_version, action, promoted_at, promoted_by, reason "
            "from ops.promotions order by promoted_at, promotion_id",
        )
    return [PromotionRecord(*row) for row in rows]


def active_version(settings: Settings) -> str | None:
    """The serving version according to the warehouse (None if never promoted); ACTIVE.json is made to agree."""
    state = sync_active_pointer(settings)
    return state["version"] if state else None
