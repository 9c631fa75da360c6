"""State the serving workers of one machine share: exposure per version and creator group, and a change counter.

`streamrec serve --workers N` starts N processes on one port (uvicorn's supervisor); the kernel hands
each connection to one of them. Two things must then hold across processes (docs/adr/0007-shared-serving-state.md):

- Exposure deficits. Each worker adds the position-weighted exposure of the pages it logged to one
  shared array per model version (18 float64 per version, in a small file every worker maps), so the
  fairness re-rank of every worker sees the exposure all of them served: a group starved on one
  worker is served by the next request on any worker.
- Commands. Reload, canary and snapshot commands reach one worker. It applies them, they are already
  persisted (ACTIVE.json, CANARY.json, snapshots/CURRENT.json), and it bumps `generation`; every worker
  polls the counter (`SYNC_INTERVAL_SECONDS`) and re-reads the three files when it moved.

The file is `STREAMREC_SHARED_STATE` (set by `streamrec serve --workers`, fresh per server start). Updates
take an exclusive `flock` on it (read-modify-write of a few floats, ~µs); the exposure restored from the
log segments at startup is added by exactly one worker (the first to claim `restored`).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from streamrec.api.services.fairness import N_GROUPS, ExposureTracker
from streamrec.core.errors import StreamRecError

MAGIC = b"SRSHARE1"
HEADER = struct.Struct("<8sQQ")  # magic, generation, restored (0/1)
HEADER_BYTES = 64
NAME_BYTES = 64
SLOT_BYTES = NAME_BYTES + 8 * N_GROUPS
MAX_VERSIONS = 256  # versions served since the server started (control + candidates); far beyond any real count
FILE_BYTES = HEADER_BYTES + MAX_VERSIONS * SLOT_BYTES
SYNC_INTERVAL_SECONDS = 0.2


class SharedState:
    """The mapped file; safe across processes (flock) and threads (a lock around the flock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._thread_lock = threading.Lock()
        with self._locked():
            if os.fstat(self._fd).st_size < FILE_BYTES:
                os.ftruncate(self._fd, FILE_BYTES)  # zeros: no versions, generation 0
                os.pwrite(self._fd, HEADER.pack(MAGIC, 0, 0), 0)
        self._map = mmap.mmap(self._fd, FILE_BYTES)
        if self._map[:8] != MAGIC:
            raise StreamRecError(f"{path}: not a StreamRec shared-state file")
        self._slots: dict[str, int] = {}  # version -> slot, cached (slots are never reassigned)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _values(self, slot: int) -> np.ndarray:
        offset = HEADER_BYTES + slot * SLOT_BYTES + NAME_BYTES
        return np.frombuffer(self._map, dtype=np.float64, count=N_GROUPS, offset=offset)

    def _slot(self, version: str, create: bool) -> int | None:
        """The slot of `version`; call with the lock held when `create`."""
        slot = self._slots.get(version)
        if slot is not None:
            return slot
        name = version.encode()[:NAME_BYTES].ljust(NAME_BYTES, b"\0")
        for i in range(MAX_VERSIONS):
            start = HEADER_BYTES + i * SLOT_BYTES
            stored = self._map[start : start + NAME_BYTES]
            if stored == name:
                self._slots[version] = i
                return i
            if stored[0] == 0:
                if not create:
                    return None
                self._map[start : start + NAME_BYTES] = name
                self._slots[version] = i
                return i
        raise StreamRecError(f"{self.path}: more than {MAX_VERSIONS} versions served; restart the server")

    def exposure(self, version: str) -> np.ndarray:
        """A copy of `version`'s exposure per group, as every worker has added it."""
        with self._locked():
            slot = self._slot(version, create=False)
            return np.zeros(N_GROUPS) if slot is None else self._values(slot).copy()

    def add(self, version: str, per_group: np.ndarray) -> None:
        """Add (N_GROUPS,) exposure to `version`."""
        with self._locked():
            slot = self._slot(version, create=True)
            assert slot is not None
            self._values(slot)[:] += per_group

    @property
    def generation(self) -> int:
        """How many commands workers have announced (read without the lock: one aligned 8-byte word)."""
        return HEADER.unpack_from(self._map, 0)[1]

    def bump(self) -> int:
        """Announce a command; returns the new generation."""
        with self._locked():
            magic, generation, restored = HEADER.unpack_from(self._map, 0)
            HEADER.pack_into(self._map, 0, magic, generation + 1, restored)
            return generation + 1

    def claim_restore(self) -> bool:
        """True for exactly one caller over the file's life: that worker adds the exposure restored from the logs."""
        with self._locked():
            magic, generation, restored = HEADER.unpack_from(self._map, 0)
            if restored:
                return False
            HEADER.pack_into(self._map, 0, magic, generation, 1)
            return True

    def close(self) -> None:
        """Unmap and close."""
        self._map.close()
        os.close(self._fd)


class SharedExposureTracker(ExposureTracker):
    """An ExposureTracker whose per-group exposure lives in the SharedState; shown creators stay per worker.

    Which creators a version has shown only orders candidates of a lagging group (never-shown first);
    the deficits, which decide whether and how many slots are reserved, are the shared part.
    """

    def __init__(self, shared: SharedState) -> None:
        super().__init__()
        self.shared = shared

    def exposure(self, version: str) -> np.ndarray:
        """The exposure per group of `version` over every worker."""
        return self.shared.exposure(version)

    def add(
        self, version: str, groups: np.ndarray, exposure: np.ndarray, creators: np.ndarray | None = None
    ) -> list[int]:
        """Add to the shared per-group exposure; the new-creator bookkeeping stays local."""
        page = np.bincount(np.asarray(groups, dtype=np.int64), weights=exposure, minlength=N_GROUPS)
        self.shared.add(version, page)
        if creators is None:
            return []
        with self._lock:
            shown = self._creators.setdefault(version, set())
            new = [c for c in dict.fromkeys(np.asarray(creators).tolist()) if c not in shown]
            shown.update(new)
            return new

    def claim_restore(self) -> bool:
        """Only the first worker adds the exposure restored from the log segments."""
        return self.shared.claim_restore()
