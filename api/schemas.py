"""Request and response bodies (msgspec Structs): these are what the OpenAPI schema publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

EventType = Literal["click", "play", "complete", "skip", "like"]
Policy = Literal["personalized", "holdout", "cold_start"]
CanaryPhase = Literal["none", "phase1", "phase2"]

MAX_INT64 = 2**53 - 1  # the largest id a JSON number carries exactly (JavaScript clients)
ItemId = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64, description="Catalogue item id.")]
RequestId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$", description="From the response.")
]


VersionTag = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class RecommendedItem(msgspec.Struct, frozen=True):
    """One served slot."""

    item_id: int
    creator_id: int
    score: float  # ranker score (popularity score for holdout and cold start)
    position: int  # 1-based slot
    propensity: float  # P(this item in this slot) under the logging policy; docs/api.md defines it


class Recommendations(msgspec.Struct, frozen=True):
    """The page served for one request; every item is in the impression log before this is sent."""

    request_id: str
    model_version: str
    policy: Policy
    canary_phase: CanaryPhase
    items: list[RecommendedItem]
    cold_start: bool
    snapshot_id: str | None = None  # the feature snapshot this page read (None: the bundle's own features)


class FeedbackEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An outcome on a served item."""

    request_id: RequestId
    item_id: ItemId
    event_type: EventType
    event_ts: datetime
    watch_seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400 * 7)] = 0.0


class EventBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Up to STREAMREC_MAX_EVENTS events (default 1000); the whole batch is stored or none of it."""

    events: Annotated[list[FeedbackEvent], msgspec.Meta(min_length=1, max_length=1000)]


class EventsAccepted(msgspec.Struct, frozen=True):
    """How many events were stored durably and their ids, in request order."""

    accepted: int
    event_ids: list[str]


class Health(msgspec.Struct, frozen=True):
    """Liveness is implied by any answer; `ready` is whether a bundle is loaded."""

    status: Literal["ok", "not_ready"]
    ready: bool
    model_version: str | None
    candidate_version: str | None
    detail: str | None = None


class ActiveVersion(msgspec.Struct, frozen=True):
    """The bundle serving the control arm, plus the canary candidate if one runs."""

    version: str
    manifest_sha256: str
    contract_sha256: str
    index_kind: str
    n_items: int
    loaded_at: datetime
    promoted_at: str | None
    candidate_version: str | None


class CanaryCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`start` needs candidate_version (phase and share optional); advance, hold and rollback take nothing."""

    action: Literal["start", "advance", "hold", "rollback"]
    candidate_version: VersionTag | None = None
    phase: Literal[1, 2] | None = None
    share: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


class CanaryStatus(msgspec.Struct, frozen=True):
    """Where the canary stands; `state` is idle, running or held."""

    state: Literal["idle", "running", "held"]
    control_version: str | None
    candidate_version: str | None
    phase: int | None
    share: float
    started_at: str | None
    detail: str | None = None


class ReloadResult(msgspec.Struct, frozen=True):
    """What `POST /v1/admin/reload` did."""

    version: str
    previous_version: str | None
    changed: bool


class SnapshotResult(msgspec.Struct, frozen=True):
    """What `POST /v1/admin/snapshot` did, and how the snapshot's users match the serving bundle's."""

    snapshot_id: str
    previous_snapshot_id: str | None
    changed: bool
    snapshot_users: int
    bundle_users: int
    only_in_snapshot: int  # served from fresh features, unknown to the bundle's id embeddings
    only_in_bundle: int  # served cold start: the snapshot has no row for them


class ErrorBody(msgspec.Struct, frozen=True):
    """Every 4xx/5xx answer: a status code and a sentence saying what is wrong."""

    status_code: int
    detail: str
    extra: list[dict] | dict | None = None
