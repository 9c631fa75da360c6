"""The two-phase canary as a small immutable state machine (docs/adr/0004-two-phase-canary.md).

    idle --start--> running(phase 1, 10%) --advance--> running(phase 2, 25%) --advance--> idle (candidate serves all)
    running --hold--> held (0% to the candidate) --advance/start--> running
    running|held --rollback--> idle (candidate dropped)

Phase 1 is judged on predictive metrics and latency, phase 2 on creator-exposure equity; the
judging is SQL over the ingested logs, done by `streamrec canary advance`, not by the server.
Every change is also written to `artifacts/CANARY.json` (next to ACTIVE.json), so a restarted
server resumes the canary it was running instead of silently dropping it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from streamrec.core.errors import StreamRecError

CANARY_FILE = "CANARY.json"


class CanaryConflict(StreamRecError):
    """A canary command that does not apply to the current state (HTTP 409)."""


@dataclass(frozen=True)
class CanaryState:
    """Where the canary stands; replaced whole on every change."""

    state: str = "idle"  # idle | running | held
    candidate_version: str | None = None
    phase: int | None = None
    share: float = 0.0
    started_at: str | None = None

    @property
    def routing_share(self) -> float:
        """Share of users sent to the candidate right now (0 unless running)."""
        return self.share if self.state == "running" else 0.0

    @property
    def phase_label(self) -> str:
        """`phase1`/`phase2` while running (logged with both arms), else `none`."""
        return f"phase{self.phase}" if self.state == "running" and self.phase else "none"


def start(state: CanaryState, candidate: str, phase: int, share: float) -> CanaryState:
    """Begin (or restart) a canary of `candidate` at `phase` with `share` of users."""
    if state.state != "idle" and state.candidate_version != candidate:
        raise CanaryConflict(
            f"a canary of {state.candidate_version} is {state.state}: roll it back before starting {candidate}"
        )
    return CanaryState(
        state="running",
        candidate_version=candidate,
        phase=phase,
        share=share,
        started_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
    )


def advance(state: CanaryState, phase2_share: float) -> tuple[CanaryState, bool]:
    """Next step: phase 1 -> phase 2, or phase 2 -> done. Returns (new state, whether the candidate now serves all)."""
    if state.state == "idle":
        raise CanaryConflict("no canary is running: start one with `streamrec canary start VERSION`")
    if state.phase == 1:
        return replace(state, state="running", phase=2, share=phase2_share), False
    return CanaryState(), True


def hold(state: CanaryState) -> CanaryState:
    """Pause: the candidate stays loaded but gets no traffic until advance/start."""
    if state.state == "idle":
        raise CanaryConflict("no canary is running: nothing to hold")
    return replace(state, state="held")


def rollback(state: CanaryState) -> CanaryState:
    """Drop the candidate: all traffic back to the serving version."""
    if state.state == "idle":
        raise CanaryConflict("no canary is running: nothing to roll back")
    return CanaryState()


def save(artifacts_dir: Path, state: CanaryState) -> None:
    """Write the state to CANARY.json atomically (temp file, fsync, rename)."""
    from streamrec.core.atomic import write_json_atomically

    write_json_atomically(artifacts_dir / CANARY_FILE, asdict(state))


def load(artifacts_dir: Path) -> CanaryState:
    """The saved state; idle when nothing was saved. A file that does not parse raises, naming it."""
    path = artifacts_dir / CANARY_FILE
    if not path.is_file():
        return CanaryState()
    try:
        raw = json.loads(path.read_text())
        state = CanaryState(
            state=str(raw["state"]),
            candidate_version=raw.get("candidate_version"),
            phase=raw.get("phase"),
            share=float(raw.get("share") or 0.0),
            started_at=raw.get("started_at"),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StreamRecError(f"{path}: not a valid canary state ({exc})") from exc
    if state.state not in ("idle", "running", "held") or (state.state != "idle" and not state.candidate_version):
        raise StreamRecError(f"{path}: not a valid canary state ({state})")
    return state
