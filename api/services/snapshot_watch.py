"""Follow `streamrec materialize` without an admin call: poll snapshots/CURRENT.json and swap in what it names.

On with STREAMREC_SNAPSHOT_WATCH_SECONDS > 0. Each tick compares the pointer file's identity (inode, size,
mtime; materialize replaces it by rename, so a new snapshot is a new inode) with the last one seen, and on
a change calls the same `ServingState.load_snapshot` as POST /v1/admin/snapshot: the snapshot is verified
against the contract and the serving bundle, a refused one keeps the previous snapshot serving (logged),
and requests in flight finish on the bundle and snapshot they started with. Every worker of
`serve --workers N` runs its own watch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio

from streamrec.api.services.serving import ServingState
from streamrec.api.services.snapshot_state import snapshots_dir
from streamrec.core.errors import StreamRecError
from streamrec.models_ml.feature_snapshot import CURRENT_FILE

logger = logging.getLogger("streamrec.api")


def pointer_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime in ns) of the pointer file, None while it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


async def watch_snapshots(state: ServingState, home: Path, interval_seconds: float) -> None:
    """Poll forever (until cancelled); load the snapshot CURRENT.json names whenever the file changes."""
    pointer = snapshots_dir(home) / CURRENT_FILE
    seen: tuple[int, int, int] | None = None  # the first tick checks, in case it changed since startup
    while True:
        await anyio.sleep(interval_seconds)
        identity = pointer_identity(pointer)
        if identity is None or identity == seen:
            continue
        seen = identity
        try:
            snapshot_id, previous, changed, _ = await state.load_snapshot()
        except StreamRecError as exc:  # SnapshotRefused included: the previous snapshot keeps serving
            logger.error("snapshot watch: %s unchanged: %s", pointer, exc)
            continue
        if changed:
            logger.info("snapshot watch: serving %s (was %s)", snapshot_id, previous)
