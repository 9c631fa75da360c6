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
from streamrec.core.errors import StreamRecError
from streamrec.models_ml.bundle import ACTIVE_FILE

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
        freeze_heap()
        return bundle

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
