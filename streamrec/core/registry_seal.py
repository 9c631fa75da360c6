"""The registry's projections for the API: ACTIVE.json and one registration record per registered bundle.

The warehouse is the record (`ops.model_versions`, `ops.promotions`); the API never opens it, so
the registry writes what the API needs next to the bundles, each file sealed with an HMAC-SHA256
over its fields under a per-home key (`artifacts/.registry.key`, created by the registry, mode
0600). The API accepts a pointer or a record only if its seal matches: a hand-edited ACTIVE.json
(another version, another manifest hash, a missing field) and a bundle directory nobody
registered are refused, while `streamrec versions` / `promote` / `rollback` rewrite the files
from the warehouse whenever they disagree. Sealing is not signing against an attacker who can
read the key: it makes the files checked projections of the registry, not a second source of truth.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from streamrec.core.atomic import write_json_atomically
from streamrec.core.errors import StreamRecError

ACTIVE_FILE = "ACTIVE.json"
KEY_FILE = ".registry.key"
REGISTERED_DIR = "registered"
SEAL_FIELD = "seal"
T = TypeVar("T", bound=msgspec.Struct)


class ActivePointerFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """ACTIVE.json: the latest ops.promotions row joined with its ops.model_versions row, sealed."""

    version: str
    manifest_sha256: str
    promoted_at: str
    promotion_id: str
    bundle_path: str
    seal: str


class RegistrationFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """registered/<version>.json: one ops.model_versions row (what a canary may load), sealed."""

    version: str
    manifest_sha256: str
    bundle_path: str
    seal: str


def registry_key(artifacts_dir: Path, create: bool = False) -> bytes:
    """The home's sealing key; created (random, 0600) when `create` and missing, else a missing key raises."""
    path = artifacts_dir / KEY_FILE
    if create and not path.exists():
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another registry process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
                handle.flush()
                os.fsync(handle.fileno())
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise StreamRecError(
            f"{path} is missing, so no registry file can be checked: run `streamrec versions` to rewrite them"
        ) from None
    if not key:
        raise StreamRecError(f"{path} is empty: delete it and run `streamrec versions` to rewrite the registry files")
    return key


def seal(key: bytes, fields: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) over the fields but the seal, as canonical JSON."""
    canonical = json.dumps({k: v for k, v in fields.items() if k != SEAL_FIELD}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def write_sealed(path: Path, artifacts_dir: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Seal `fields` with the home's key (creating it) and write them atomically; returns what was written."""
    payload = {k: v for k, v in fields.items() if k != SEAL_FIELD}
    payload[SEAL_FIELD] = seal(registry_key(artifacts_dir, create=True), payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, payload)
    return payload


def sealed_payload(artifacts_dir: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """What `write_sealed` would write (to compare with a file before rewriting it)."""
    payload = {k: v for k, v in fields.items() if k != SEAL_FIELD}
    payload[SEAL_FIELD] = seal(registry_key(artifacts_dir, create=True), payload)
    return payload


def _read_checked(path: Path, artifacts_dir: Path, kind: type[T], what: str) -> T:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StreamRecError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        value = msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise StreamRecError(
            f"{path}: not a valid {what} ({str(exc).splitlines()[0]}); run `streamrec versions` to rewrite it"
        ) from None
    fields = msgspec.structs.asdict(value)
    if not hmac.compare_digest(fields[SEAL_FIELD], seal(registry_key(artifacts_dir), fields)):
        raise StreamRecError(
            f"{path} does not match the registry's record (its seal is wrong: edited by hand or copied from "
            "another home); run `streamrec versions` to rewrite it from ops.promotions"
        )
    return value


def read_active_file(artifacts_dir: Path) -> ActivePointerFile | None:
    """ACTIVE.json checked against its seal; None when nothing was promoted (no file)."""
    path = artifacts_dir / ACTIVE_FILE
    if not path.exists():
        return None
    return _read_checked(path, artifacts_dir, ActivePointerFile, "active-version pointer")


def registration_path(artifacts_dir: Path, version: str) -> Path:
    """Where the registration record of `version` lives."""
    return artifacts_dir / REGISTERED_DIR / f"{version}.json"


def read_registration(artifacts_dir: Path, version: str) -> RegistrationFile:
    """The sealed registration record of `version`; an unregistered version raises naming it."""
    path = registration_path(artifacts_dir, version)
    if not path.exists():
        raise StreamRecError(
            f"{version} is not a registered bundle (no {path}): only bundles in ops.model_versions may serve; "
            "`streamrec train` registers them (and `streamrec versions` rewrites missing records)"
        )
    record = _read_checked(path, artifacts_dir, RegistrationFile, "registration record")
    if record.version != version:
        raise StreamRecError(f"{path} registers {record.version!r}, not {version!r}")
    return record
