"""StreamRec's settings: one object, one precedence rule, validated once.

Every knob is a field of `StreamRecSettings`. A value comes from, in this order:

1. the environment, `STREAMREC_<FIELD>` (a few fields keep an older variable name, `ENV_NAMES`); an empty
   variable counts as unset;
2. an optional TOML file: `$STREAMREC_CONFIG`, else `./streamrec.toml` if it exists (keys are field names);
3. the defaults below.

The values are converted and checked once (msgspec, with the bounds declared on each field); a bad value fails
with one line naming the variable or the file. `streamrec config` prints every value and where it came from.

All state lives under one home directory; `Settings` derives the paths from it.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from streamrec.core.errors import StreamRecError

# What ships inside the package (the dbt project, its profile, the alembic migrations), found through the
# package itself so that an installed wheel works from any working directory. In a checkout these are the
# top-level folders, reached through the links in streamrec/ (docs/architecture.md).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PACKAGE_DIR / "dbt_project"
PROFILES_DIR = PACKAGE_DIR
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"

DEFAULT_HOME = ".streamrec"
CONFIG_FILE = "streamrec.toml"

Share = Annotated[float, Meta(ge=0.0, le=1.0)]
Positive = Annotated[int, Meta(ge=1)]


@dataclass(frozen=True)
class Settings:
    """Paths of the warehouse, bundles and logs, derived from one home directory."""

    home: Path

    @classmethod
    def from_env(cls) -> Settings:
        """The home of the effective settings (environment, streamrec.toml, default), relative to the cwd."""
        return load_settings().home

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file dbt builds and analysts query."""
        return self.home / "warehouse.duckdb"

    @property
    def raw_path(self) -> Path:
        """The DuckDB file of the raw tables, written in place by loaders and attached to the warehouse as `raw`.

        Apart from the warehouse so that a build's copy (ADR 0008) does not grow with history.
        """
        return self.home / "raw.duckdb"

    @property
    def artifacts_dir(self) -> Path:
        """Versioned model bundles, one directory per version tag."""
        return self.home / "artifacts"

    @property
    def logs_dir(self) -> Path:
        """Append-only impression and event logs written by the API."""
        return self.home / "logs"

    def ensure(self) -> Settings:
        """Create the home directory tree if it does not exist yet."""
        for path in (self.home, self.artifacts_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self


class StreamRecSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every setting of StreamRec with its default; serving knobs are documented in docs/api.md."""

    home: Settings = msgspec.field(default_factory=lambda: Settings(Path(DEFAULT_HOME).resolve()))
    # serving
    admin_token: str | None = None  # unset disables the admin endpoints (401)
    retrieval_k: Annotated[int, Meta(ge=1, le=10_000)] = 500  # FAISS candidates handed to the ranker
    # Amortized exposure control (api/services/fairness.py, ADR 0006): at most fairness_cap of a page's slots
    # go to the creator groups furthest below target; 0 turns the control off.
    fairness_cap: Share = 0.7
    # per audited dimension, the normalised share a group must reach relative to the most exposed group:
    # one ratio (`0.7`) or `creator_language=0.8,creator_is_new=0.7,...` (fairness.parse_targets checks it).
    # The default is the creator_exposure_equity threshold (0.6) plus a margin of 0.1: at the threshold itself
    # the controller parks lagging groups exactly on it, and the interval gate can then never PASS (ADR 0006).
    fairness_targets: str = "0.7"
    fairness_min_score: float = -math.inf  # ranker logit below which an item is never promoted
    fairness_price: Annotated[float, Meta(ge=0.0)] = math.inf  # logits a promotion may cost per page of backlog
    fairness_reach: Annotated[int, Meta(ge=0, le=1000)] = 20  # shortlist items scored per lagging group
    exploration: Literal["epsilon_greedy", "plackett_luce", "none"] = "epsilon_greedy"
    epsilon: Share = 0.1  # probability of serving a uniformly random list from the exploration pool
    temperature: Annotated[float, Meta(gt=0.0)] = 0.5  # Plackett-Luce temperature on standardised scores
    pl_samples: Positive = 1000  # Monte Carlo samples for Plackett-Luce marginal propensities
    explore_pool: Positive = 50  # candidates (after re-rank) the exploration policy may draw from
    holdout_share: Share = 0.05  # users served the non-personalised popularity policy
    holdout_salt: str = "holdout-v1"
    canary_salt: str = "canary-v1"
    canary_phase1_share: Share = 0.10
    canary_phase2_share: Share = 0.25
    max_events: Positive = 1000  # events per POST /v1/events
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 1024 * 1024
    request_map_size: Positive = 200_000  # request_id -> user_id entries kept to attribute events
    seed: int | None = None  # RNG seed for exploration (tests); None = fresh entropy
    # Impression/event log durability (streamrec.core.eventlog): written before the response in every mode;
    # `interval` fdatasyncs in the background every log_fsync_interval_ms, `always` before each response.
    log_fsync: Literal["interval", "always", "off"] = "interval"
    log_fsync_interval_ms: Annotated[int, Meta(ge=1, le=60_000)] = 50
    serve_pure_python: bool = False  # asyncio + h11 instead of uvloop + httptools (to compare the stacks)
    access_log: bool = False  # one uvicorn.access line per request (off: /metrics and the logs count them)
    # The file serving workers share exposure and command announcements through (api/services/shared_state.py);
    # `streamrec serve --workers N` sets a fresh one per start. Unset: a single process keeps them in memory.
    shared_state: str | None = None
    # Poll snapshots/CURRENT.json this often and swap in a newly materialized snapshot (api/services/
    # snapshot_watch.py); 0: only POST /v1/admin/snapshot (or `materialize --notify URL`) swaps.
    snapshot_watch_seconds: Annotated[float, Meta(ge=0.0, le=3600.0)] = 0.0
    # logging (streamrec.core.logging_setup): one format for the CLI, the API, uvicorn and dbt runs
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # batch jobs: how long a job waits for another process to release warehouse.duckdb before it stops
    # with one line naming that process (core.warehouse.open_duckdb)
    lock_wait_seconds: Annotated[float, Meta(ge=0.0, le=3600.0)] = 30.0
    # Spark (profiles.yml reads these through the environment `streamrec spark build` passes to dbt)
    spark_master: str = "local[*]"
    spark_driver_memory: str = "4g"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> StreamRecSettings:
        """The effective settings (environment, then streamrec.toml, then defaults), with `overrides` on top."""
        settings = load_settings(env)
        return msgspec.structs.replace(settings, **overrides) if overrides else settings

    def with_home(self, home: Settings) -> StreamRecSettings:
        """The same settings pointed at another STREAMREC_HOME (tests, bench)."""
        return msgspec.structs.replace(self, home=home)


# Fields whose variable is not STREAMREC_<FIELD> (kept for compatibility with deployed environments).
ENV_NAMES = {"temperature": "STREAMREC_PL_TEMPERATURE"}
SECRET_FIELDS = frozenset({"admin_token"})


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return ENV_NAMES.get(field, f"STREAMREC_{field.upper()}")


def _config_path(env: Mapping[str, str]) -> Path | None:
    explicit = env.get("STREAMREC_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise StreamRecError(f"STREAMREC_CONFIG={explicit}: no such file")
        return path
    default = Path(CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StreamRecError(f"{path}: not valid TOML ({exc})") from None
    fields = set(StreamRecSettings.__struct_fields__)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise StreamRecError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    return data


def resolve_settings(env: Mapping[str, str] | None = None) -> tuple[StreamRecSettings, dict[str, str]]:
    """The effective settings and, per field, where its value came from (`env NAME`, the TOML path, `default`)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources = dict.fromkeys(StreamRecSettings.__struct_fields__, "default")
    path = _config_path(env)
    if path is not None:
        for field, value in _read_toml(path).items():
            values[field], sources[field] = value, str(path)
    for field in StreamRecSettings.__struct_fields__:
        raw = env.get(env_name(field))
        if raw is not None and raw != "":
            values[field], sources[field] = raw, f"env {env_name(field)}"
    # The home is a path relative to the current directory, resolved once here.
    home = Settings(Path(str(values.pop("home", DEFAULT_HOME))).expanduser().resolve())
    try:
        settings = msgspec.convert(values, StreamRecSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise StreamRecError(_explain(exc, sources, values)) from None
    return msgspec.structs.replace(settings, home=home), sources


def _explain(exc: msgspec.ValidationError, sources: Mapping[str, str], values: Mapping[str, Any]) -> str:
    # msgspec says "Expected `int` >= 1 - at `$.retrieval_k`"; name the variable or file the value came from.
    message = str(exc)
    field = message.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in message else ""
    reason = message.split(" - at ")[0]
    source = sources.get(field, "")
    where = f"environment variable {env_name(field)}" if source.startswith("env ") else f"{field} in {source}"
    verdict = "is out of range" if any(op in reason for op in ("<", ">")) else "is not valid"
    return f"{where}={values.get(field)!r} {verdict}: {reason}"


def load_settings(env: Mapping[str, str] | None = None) -> StreamRecSettings:
    """The effective settings (see the module docstring for the precedence)."""
    return resolve_settings(env)[0]
