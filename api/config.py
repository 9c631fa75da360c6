"""Serving settings: one frozen dataclass read from the environment once and handed to the app factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

T = TypeVar("T")

EXPLORATION_POLICIES = ("epsilon_greedy", "plackett_luce", "none")
LOG_FSYNC_MODES = ("interval", "always", "off")


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, check: Callable[[T], bool]) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise StreamRecError(f"environment variable {name}={raw!r} is not a valid {parse.__name__}") from None
    if not check(value):
        raise StreamRecError(f"environment variable {name}={raw!r} is out of range")
    return value


def _share(value: float) -> bool:
    return 0.0 <= value <= 1.0


@dataclass(frozen=True)
class ApiSettings:
    """Everything the serving process needs to know; defaults are the documented ones (docs/api.md)."""

    home: Settings = field(default_factory=Settings.from_env)
    admin_token: str | None = None  # STREAMREC_ADMIN_TOKEN; unset disables the admin endpoints (401)
    retrieval_k: int = 500  # FAISS candidates handed to the ranker
    fairness_share: float = 0.05  # share of slots reserved for the most under-exposed creator groups
    fairness_groups: int = 3  # how many of the least-exposed groups count as "under-exposed"
    exploration: str = "epsilon_greedy"  # epsilon_greedy | plackett_luce | none
    epsilon: float = 0.1  # probability of serving a uniformly random list from the exploration pool
    temperature: float = 0.5  # Plackett-Luce temperature on standardised ranker scores
    pl_samples: int = 1000  # Monte Carlo samples for Plackett-Luce marginal propensities
    explore_pool: int = 50  # candidates (after re-rank) the exploration policy may draw from
    holdout_share: float = 0.05  # users served the non-personalised popularity policy
    holdout_salt: str = "holdout-v1"
    canary_salt: str = "canary-v1"
    canary_phase1_share: float = 0.10
    canary_phase2_share: float = 0.25
    max_events: int = 1000  # events per POST /v1/events
    max_body_bytes: int = 1024 * 1024
    request_map_size: int = 200_000  # request_id -> user_id entries kept to attribute events
    seed: int | None = None  # RNG seed for exploration (tests); None = fresh entropy
    # Impression/event log durability (streamrec.eventlog): written before the response in every mode;
    # `interval` fdatasyncs in the background every log_fsync_interval_ms, `always` before each response.
    log_fsync: str = "interval"
    log_fsync_interval_ms: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ApiSettings:
        """Read STREAMREC_* variables once; a malformed value fails with the variable's name."""
        env = os.environ if env is None else env
        home = Settings(home=Path(env.get("STREAMREC_HOME") or ".streamrec").resolve())
        exploration = env.get("STREAMREC_EXPLORATION") or cls.exploration
        if exploration not in EXPLORATION_POLICIES:
            raise StreamRecError(
                f"environment variable STREAMREC_EXPLORATION={exploration!r} is not one of {list(EXPLORATION_POLICIES)}"
            )
        log_fsync = env.get("STREAMREC_LOG_FSYNC") or cls.log_fsync
        if log_fsync not in LOG_FSYNC_MODES:
            raise StreamRecError(
                f"environment variable STREAMREC_LOG_FSYNC={log_fsync!r} is not one of {list(LOG_FSYNC_MODES)}"
            )
        seed_raw = env.get("STREAMREC_SEED")
        settings = cls(
            home=home,
            admin_token=env.get("STREAMREC_ADMIN_TOKEN") or None,
            retrieval_k=_read(env, "STREAMREC_RETRIEVAL_K", int, cls.retrieval_k, lambda v: 1 <= v <= 10_000),
            fairness_share=_read(env, "STREAMREC_FAIRNESS_SHARE", float, cls.fairness_share, _share),
            fairness_groups=_read(env, "STREAMREC_FAIRNESS_GROUPS", int, cls.fairness_groups, lambda v: v >= 1),
            exploration=exploration,
            epsilon=_read(env, "STREAMREC_EPSILON", float, cls.epsilon, _share),
            temperature=_read(env, "STREAMREC_PL_TEMPERATURE", float, cls.temperature, lambda v: v > 0),
            pl_samples=_read(env, "STREAMREC_PL_SAMPLES", int, cls.pl_samples, lambda v: v >= 1),
            explore_pool=_read(env, "STREAMREC_EXPLORE_POOL", int, cls.explore_pool, lambda v: v >= 1),
            holdout_share=_read(env, "STREAMREC_HOLDOUT_SHARE", float, cls.holdout_share, _share),
            holdout_salt=env.get("STREAMREC_HOLDOUT_SALT") or cls.holdout_salt,
            canary_salt=env.get("STREAMREC_CANARY_SALT") or cls.canary_salt,
            canary_phase1_share=_read(env, "STREAMREC_CANARY_PHASE1_SHARE", float, cls.canary_phase1_share, _share),
            canary_phase2_share=_read(env, "STREAMREC_CANARY_PHASE2_SHARE", float, cls.canary_phase2_share, _share),
            max_events=_read(env, "STREAMREC_MAX_EVENTS", int, cls.max_events, lambda v: v >= 1),
            max_body_bytes=_read(env, "STREAMREC_MAX_BODY_BYTES", int, cls.max_body_bytes, lambda v: v >= 1024),
            request_map_size=_read(env, "STREAMREC_REQUEST_MAP_SIZE", int, cls.request_map_size, lambda v: v >= 1),
            log_fsync=log_fsync,
            log_fsync_interval_ms=_read(
                env, "STREAMREC_LOG_FSYNC_INTERVAL_MS", int, cls.log_fsync_interval_ms, lambda v: 1 <= v <= 60_000
            ),
            seed=None if not seed_raw else _read(env, "STREAMREC_SEED", int, 0, lambda v: True),
        )
        return replace(settings, **overrides) if overrides else settings

    def with_home(self, home: Settings) -> ApiSettings:
        """The same settings pointed at another STREAMREC_HOME (tests, bench)."""
        return replace(self, home=home)
