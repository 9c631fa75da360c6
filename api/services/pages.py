"""One recommendation page: routed to a bundle, recommended, written to the impression log, then answered.

The order is the durability promise (docs/adr/0001-warehouse-concurrency.md): every slot is in the
impression log before the response exists, and only then does it count as exposure and become a request
that events can be attributed to.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache

from streamrec.api.schemas import Recommendations, RecommendedItem
from streamrec.api.services.container import Services
from streamrec.core.eventlog import ImpressionRecord


@lru_cache(maxsize=8)
def _as_of(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=None)


def _feature_age_seconds(as_of: str | None, served_at: datetime) -> float | None:
    """How old the features this request read were (served_at minus their as_of); None when unknown."""
    return None if as_of is None else (served_at - _as_of(as_of)).total_seconds()


async def serve_page(services: Services, user_id: int, k: int, language: str | None, started: float) -> Recommendations:
    """Serve, log and remember one page of k items for `user_id`; `started` is the request's perf_counter."""
    routing, logs = services.ready_routing()
    bundle, phase = routing.route(user_id, services.config.canary_salt)
    # On the event loop's thread, not a worker thread: the path is ~1-2 ms of mostly GIL-holding work,
    # and handing it to a thread pool made threads convoy on the GIL (docs/adr/0005-serving-concurrency.md).
    page = services.recommender.recommend(bundle, user_id, k, language)
    services.metrics.observe_pipeline(page.policy, time.perf_counter() - started)

    request_id = uuid.uuid4().hex
    served_at = datetime.now(UTC).replace(tzinfo=None)
    item_ids = bundle.item_ids[page.rows].tolist()
    creator_ids = bundle.item_creator_ids[page.rows].tolist()
    scores = page.scores.tolist()
    propensities = page.propensities.tolist()
    snapshot_id = bundle.snapshot_id
    feature_age = _feature_age_seconds(bundle.snapshot_as_of, served_at)
    latency_ms = (time.perf_counter() - started) * 1000.0  # up to the log write, which cannot log itself
    await logs.impressions.append_async(
        [
            ImpressionRecord(
                request_id=request_id,
                position=position,
                served_at=served_at,
                user_id=user_id,
                item_id=item_id,
                policy=page.policy,
                model_version=bundle.version,
                creator_id=creator_id,
                score=score,
                propensity=propensity,
                canary_phase=phase,
                latency_ms=latency_ms,
                snapshot_id=snapshot_id,
                feature_age_seconds=feature_age,
            )
            for position, (item_id, creator_id, score, propensity) in enumerate(
                zip(item_ids, creator_ids, scores, propensities, strict=True), start=1
            )
        ]
    )
    # Only now, with the page durable, does it count as exposure and become attributable.
    services.recommender.record_served(bundle, page)
    logs.remember(request_id, user_id, item_ids, served_at)
    services.metrics.inc("streamrec_impressions_logged_total", (("policy", page.policy),), len(item_ids))
    return Recommendations(
        request_id=request_id,
        model_version=bundle.version,
        policy=page.policy,  # type: ignore[arg-type]
        canary_phase=phase,  # type: ignore[arg-type]
        cold_start=page.cold_start,
        snapshot_id=snapshot_id,
        items=[
            RecommendedItem(item_id=i, creator_id=c, score=s, position=p, propensity=q)
            for p, (i, c, s, q) in enumerate(zip(item_ids, creator_ids, scores, propensities, strict=True), 1)
        ],
    )
