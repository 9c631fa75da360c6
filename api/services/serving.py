"""Which bundle serves whom: the control bundle, an optional canary candidate, swapped atomically.

The three (control, candidate, canary state) live in one frozen `Routing` object that is replaced
whole by reload and canary commands: a request reads `state.routing` once and is served wholly by
the bundle it picked, so no request ever sees the model of one version with the index of another.
Loading runs in a worker thread (it verifies hashes and builds arrays); commands are serialised
by one asyncio lock.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio.to_thread

from streamrec.api.config import ApiSettings
from streamrec.api.services import canary_state as canary
from streamrec.api.services.assignment import routes_to_candidate
from streamrec.api.services.canary_state import CanaryConflict, CanaryState
from streamrec.api.services.serving_bundle import ServingBundle, load_serving_bundle, read_active, registered_bundle
from streamrec.api.services.snapshot_state import SnapshotCoverage, load_current, read_current, with_snapshot
from streamrec.core.errors import StreamRecError
from streamrec.models_ml.bundle import ACTIVE_FILE
from streamrec.models_ml.feature_snapshot import FeatureSnapshot, SnapshotRefused

logger = logging.getLogger("streamrec.api")


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's reach (`gc.freeze`).

    The modules and a loaded bundle are a few hundred thousand long-lived objects; a full collection
    walks them all (~70-95 ms measured with the 1M-item bundle), and it runs on the event loop's
    thread, stalling every queued request. Frozen objects are still freed by reference counting
    when a reload drops them; only reference cycles among them would stay (none are known).
    """
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Routing:
    """A consistent view of what serves: replaced, never mutated."""

    control: ServingBundle | None = None
    candidate: ServingBundle | None = None
    canary: CanaryState = field(default_factory=CanaryState)

    def route(self, user_id: int, salt: str) -> tuple[ServingBundle, str]:
        """The bundle for this user and the canary phase label to log; requires a control bundle."""
        assert self.control is not None
        if self.candidate is not None and routes_to_candidate(user_id, self.canary.routing_share, salt):
            return self.candidate, self.canary.phase_label
        return self.control, self.canary.phase_label


class ServingState:
    """Holds the current `Routing` and applies reloads and canary commands to it."""

    def __init__(self, config: ApiSettings, loader=load_serving_bundle) -> None:
        self.config = config
        self.routing = Routing()
        self.load_error: str | None = None
        self._loader = loader
        self._lock = asyncio.Lock()
        # The materialized feature snapshot every bundle is composed with (snapshot_state.py); None: bundle features.
        self.snapshot: FeatureSnapshot | None = None
        self.coverage: SnapshotCoverage | None = None
        self.snapshot_error: str | None = None

    @property
    def ready(self) -> bool:
        """Whether a bundle serves (health readiness)."""
        return self.routing.control is not None

    def _bundle_dir(self, version: str) -> Path:
        return self.config.home.artifacts_dir / version

    async def _load(
        self, version: str, manifest_sha256: str | None, promoted_at: str | None, bundle_dir: Path | None = None
    ) -> ServingBundle:
        bundle = await anyio.to_thread.run_sync(
            lambda: self._loader(
                bundle_dir or self._bundle_dir(version),
                expected_version=version,
                expected_manifest_sha256=manifest_sha256,
                promoted_at=promoted_at,
            )
        )
        bundle = self._compose(bundle)
        freeze_heap()
        return bundle

    def _compose(self, bundle: ServingBundle) -> ServingBundle:
        """`bundle` served with the current snapshot; its own features when there is none or it does not fit."""
        if self.snapshot is None:
            return bundle
        try:
            composed, _ = with_snapshot(bundle, self.snapshot)
        except SnapshotRefused as exc:
            self.snapshot_error = str(exc)
            logger.error("bundle %s serves its own features: %s", bundle.version, exc)
            return bundle
        return composed

    async def load_snapshot(self) -> tuple[str, str | None, bool, SnapshotCoverage | None]:
        """Serve the snapshot snapshots/CURRENT.json names: (snapshot id, previous, changed, coverage).

        Verified against the contract and the control bundle's contract hash in a worker thread; on any
        refusal the serving snapshot (or the bundle's own features) stays and SnapshotRefused says why.
        """
        async with self._lock:
            home = self.config.home.home
            pointer = read_current(home)
            if pointer is None:
                raise SnapshotRefused("nothing materialized yet: run `streamrec materialize`")
            routing = self.routing
            if routing.control is None:
                raise SnapshotRefused("no bundle serves yet: promote one before loading a snapshot")
            previous = self.snapshot
            if (
                previous is not None
                and previous.snapshot_id == pointer.snapshot_id
                and previous.manifest_sha256 == pointer.manifest_sha256
            ):
                return previous.snapshot_id, previous.snapshot_id, False, self.coverage
            control = routing.control
            try:
                snapshot = await anyio.to_thread.run_sync(lambda: load_current(home, control))
                assert snapshot is not None
                composed, coverage = with_snapshot(control, snapshot)
            except SnapshotRefused as exc:
                self.snapshot_error = str(exc)
                logger.error("snapshot refused, still serving %s: %s", previous.snapshot_id if previous else None, exc)
                raise
            self.snapshot, self.coverage, self.snapshot_error = snapshot, coverage, None
            candidate = self._compose(routing.candidate) if routing.candidate is not None else None
            self.routing = replace(routing, control=composed, candidate=candidate)
            freeze_heap()
            logger.info(
                "serving snapshot %s (was %s): %d users, %d not in bundle %s, %d of its users missing",
                snapshot.snapshot_id,
                previous.snapshot_id if previous else None,
                coverage.snapshot_users,
                coverage.only_in_snapshot,
                control.version,
                coverage.only_in_bundle,
            )
            return snapshot.snapshot_id, previous.snapshot_id if previous else None, True, coverage

    async def sync(self) -> None:
        """Follow another worker's commands: re-read ACTIVE.json, CANARY.json and CURRENT.json (each kept on error)."""
        try:
            await self.reload()
        except StreamRecError as exc:
            logger.error("sync: bundle unchanged: %s", exc)
        try:
            await self._follow_canary()
        except StreamRecError as exc:
            logger.error("sync: canary unchanged: %s", exc)
        if read_current(self.config.home.home) is not None and self.routing.control is not None:
            try:
                await self.load_snapshot()
            except StreamRecError as exc:
                logger.error("sync: snapshot unchanged: %s", exc)

    async def _follow_canary(self) -> None:
        """Take the canary state CANARY.json holds (saved by the worker that ran the command)."""
        async with self._lock:
            saved = canary.load(self.config.home.artifacts_dir)
            routing = self.routing
            if saved == routing.canary or routing.control is None:
                return
            if saved.state == "idle" or saved.candidate_version == routing.control.version:
                self.routing = Routing(control=routing.control)
                return
            candidate = routing.candidate
            if candidate is None or candidate.version != saved.candidate_version:
                candidate = await self._load_registered(str(saved.candidate_version))
            self.routing = Routing(control=routing.control, candidate=candidate, canary=saved)

    async def _load_registered(self, version: str) -> ServingBundle:
        """Load a canary candidate only as the registry recorded it (sealed registered/<version>.json)."""
        bundle_dir, manifest_sha256 = registered_bundle(self.config.home.artifacts_dir, version)
        return await self._load(version, manifest_sha256, None, bundle_dir)

    async def reload(self) -> tuple[str, str | None, bool]:
        """Serve what ACTIVE.json names; returns (version, previous version, changed). Keeps serving on failure."""
        async with self._lock:
            previous = self.routing.control
            pointer = read_active(self.config.home.artifacts_dir)
            if pointer is None:
                raise StreamRecError(
                    f"nothing promoted yet: {self.config.home.artifacts_dir / ACTIVE_FILE} does not exist "
                    "(run `streamrec train` and `streamrec promote VERSION`)"
                )
            if (
                previous is not None
                and previous.promoted_at is not None
                and pointer.promoted_at is not None
                and pointer.promoted_at < previous.promoted_at  # ISO timestamps of one format sort as times
            ):
                # Every promote and rollback appends a newer row: an older pointer is a restored or stale copy.
                raise StreamRecError(
                    f"ACTIVE.json names the promotion of {pointer.version} at {pointer.promoted_at}, older than the "
                    f"one serving ({previous.version} at {previous.promoted_at}): ops.promotions is the record; run "
                    "`streamrec versions` to rewrite the pointer from it"
                )
            if (
                previous is not None
                and previous.version == pointer.version
                and pointer.manifest_sha256 in (None, previous.manifest_sha256)
            ):
                return previous.version, previous.version, False
            candidate = self.routing.candidate
            if (
                candidate is not None
                and candidate.version == pointer.version
                and pointer.manifest_sha256 in (None, candidate.manifest_sha256)
            ):
                bundle = replace(candidate, promoted_at=pointer.promoted_at)
            else:
                bundle = await self._load(
                    pointer.version, pointer.manifest_sha256, pointer.promoted_at, pointer.bundle_dir
                )
            routing = self.routing
            if routing.candidate is not None and routing.candidate.version == bundle.version:
                routing = Routing(control=bundle)  # the candidate was promoted: the canary is over
                self._save_canary(routing.canary)
            else:
                routing = replace(routing, control=bundle)
            self.routing = routing
            self.load_error = None
            logger.info("serving %s (was %s)", bundle.version, previous.version if previous else None)
            return bundle.version, previous.version if previous else None, True

    async def startup(self) -> None:
        """Load the active bundle if there is one, then resume a saved canary; failures leave the service live."""
        try:
            await self.reload()
        except StreamRecError as exc:
            self.load_error = str(exc)
            logger.error("not ready: %s", exc)
            return
        try:
            if read_current(self.config.home.home) is not None:
                await self.load_snapshot()
        except StreamRecError as exc:
            # The bundle's own features serve; the operator sees why in the log and in POST /v1/admin/snapshot.
            logger.error("snapshot not loaded: %s", exc)
        try:
            await self._resume_canary()
        except StreamRecError as exc:
            # The control bundle serves everyone; the operator sees why in the log and in GET /v1/admin/canary.
            logger.error("canary not resumed: %s", exc)

    async def _resume_canary(self) -> None:
        saved = canary.load(self.config.home.artifacts_dir)
        control = self.routing.control
        if saved.state == "idle" or control is None:
            return
        if saved.candidate_version == control.version:  # promoted while the server was down: the canary is over
            self._save_canary(CanaryState())
            return
        candidate = await self._load_registered(str(saved.candidate_version))
        self.routing = Routing(control=control, candidate=candidate, canary=saved)
        logger.info("resumed the canary of %s (%s, phase %s)", candidate.version, saved.state, saved.phase)

    def _save_canary(self, state: CanaryState) -> None:
        canary.save(self.config.home.artifacts_dir, state)

    async def canary_start(self, version: str, phase: int, share: float | None) -> CanaryState:
        """Load `version` as the candidate and route `share` of users to it."""
        async with self._lock:
            routing = self.routing
            if routing.control is None:
                raise CanaryConflict("no bundle serves yet: promote one before starting a canary")
            if version == routing.control.version:
                raise CanaryConflict(f"{version} already serves all traffic: nothing to canary")
            default = self.config.canary_phase1_share if phase == 1 else self.config.canary_phase2_share
            state = canary.start(routing.canary, version, phase, default if share is None else share)
            candidate = routing.candidate
            if candidate is None or candidate.version != version:
                candidate = await self._load_registered(version)
            self.routing = Routing(control=routing.control, candidate=candidate, canary=state)
            self._save_canary(state)
            return state

    async def canary_advance(self) -> CanaryState:
        """Phase 1 -> 2; phase 2 -> done, which requires the candidate to have been promoted (ACTIVE.json)."""
        async with self._lock:
            routing = self.routing
            state, finished = canary.advance(routing.canary, self.config.canary_phase2_share)
            if not finished:
                self.routing = replace(routing, canary=state)
                self._save_canary(state)
                return state
            pointer = read_active(self.config.home.artifacts_dir)
            candidate = routing.candidate
            assert candidate is not None
            if pointer is None or pointer.version != candidate.version:
                raise CanaryConflict(
                    f"finishing the canary needs {candidate.version} promoted first "
                    f"(`streamrec promote {candidate.version}`; ACTIVE.json names "
                    f"{pointer.version if pointer else 'nothing'})"
                )
            self.routing = Routing(control=replace(candidate, promoted_at=pointer.promoted_at))
            self._save_canary(state)
            return state

    async def canary_hold(self) -> CanaryState:
        """Stop routing to the candidate without unloading it."""
        async with self._lock:
            state = canary.hold(self.routing.canary)
            self.routing = replace(self.routing, canary=state)
            self._save_canary(state)
            return state

    async def canary_rollback(self) -> CanaryState:
        """Drop the candidate."""
        async with self._lock:
            state = canary.rollback(self.routing.canary)
            self.routing = Routing(control=self.routing.control)
            self._save_canary(state)
            return state
