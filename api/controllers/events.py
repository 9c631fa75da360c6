"""`POST /v1/events`: outcome events on served items, stored durably in the event log before the answer."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import JSONBody

from streamrec.api.openapi import error_response
from streamrec.api.schemas import EventBatch, EventsAccepted
from streamrec.api.services.container import Services
from streamrec.api.services.serving_logs import event_id
from streamrec.core.eventlog import EventRecord

MAX_NAMED = 10  # unknown ids named in one error message


def _utc_naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def _name(kind: str, values: list) -> str:
    shown = ", ".join(str(v) for v in values[:MAX_NAMED])
    more = f" and {len(values) - MAX_NAMED} more" if len(values) > MAX_NAMED else ""
    return f"unknown {kind} {shown}{more}"


class EventController(Controller):
    """Clicks, plays, completes, skips and likes on recommended items."""

    path = "/v1/events"
    tags = ["events"]  # noqa: RUF012 - litestar reads class attributes

    @post(
        operation_id="postEvents",
        summary="Log outcome events",
        response_description="How many events were stored durably, and their ids.",
        status_code=200,
        responses={
            400: error_response(
                "Malformed body or more than the allowed number of events.",
                400,
                "1200 events in one batch; the limit is 1000",
            ),
            413: error_response("Body larger than the limit (1 MiB by default).", 413, "Request Entity Too Large"),
            422: error_response(
                "An item id or request id the service does not know.",
                422,
                "unknown item_id 999999; no event of this batch was stored",
            ),
            503: error_response("No bundle loaded yet.", 503, "no bundle loaded yet"),
        },
    )
    async def post_events(self, data: JSONBody[EventBatch], services: NamedDependency[Services]) -> EventsAccepted:
        """Store a batch of events: all of them or, on any unknown id, none (422 naming the ids)."""
        if len(data.events) > services.config.max_events:
            raise ValidationException(
                detail=f"{len(data.events)} events in one batch; the limit is {services.config.max_events}"
            )
        routing, logs = services.ready_routing()
        bundles = [b for b in (routing.control, routing.candidate) if b is not None]
        unknown_items: list[int] = []
        unknown_requests: list[str] = []
        received_at = datetime.now(UTC).replace(tzinfo=None)
        records: list[EventRecord] = []
        ids = np.fromiter((e.item_id for e in data.events), dtype=np.int64, count=len(data.events))
        known = np.logical_or.reduce([b.item_rows(ids) >= 0 for b in bundles])
        for event, is_known in zip(data.events, known, strict=True):
            if not is_known:
                if event.item_id not in unknown_items:
                    unknown_items.append(event.item_id)
                continue
            served = logs.served(event.request_id)
            if served is None:
                if event.request_id not in unknown_requests:
                    unknown_requests.append(event.request_id)
                continue
            event_ts = _utc_naive(event.event_ts)
            records.append(
                EventRecord(
                    event_id=event_id(event.request_id, event.item_id, event.event_type, event_ts.isoformat()),
                    user_id=served.user_id,
                    item_id=event.item_id,
                    event_type=event.event_type,
                    event_ts=event_ts,
                    received_at=received_at,
                    request_id=event.request_id,
                    watch_seconds=event.watch_seconds,
                )
            )
        if unknown_items or unknown_requests:
            problems = []
            if unknown_items:
                problems.append(_name("item_id", unknown_items))
            if unknown_requests:
                problems.append(_name("request_id", unknown_requests) + " (not served, or served too long ago)")
            raise HTTPException(status_code=422, detail="; ".join(problems) + "; no event of this batch was stored")
        await logs.events.append_async(records)
        services.metrics.inc("streamrec_events_logged_total", (), len(records))
        return EventsAccepted(accepted=len(records), event_ids=[r.event_id for r in records])
