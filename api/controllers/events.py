"""`POST /v1/events`: outcome events on served items, stored durably in the event log before the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
# An outcome happens after its page was served and not in the future. The margins absorb clock skew
# between the client and this server (and a client that queues events offline for a while).
CLOCK_SKEW = timedelta(minutes=5)
MAX_FUTURE = timedelta(days=1)


def _utc_naive(ts: datetime) -> datetime | None:
    """The time as naive UTC; None when it has no UTC representation (0001-01-01+01:00 is year 0)."""
    if ts.tzinfo is None:
        return ts
    try:
        return ts.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return None


def _time_problem(event_ts: datetime | None, raw: datetime, served_at: datetime | None, now: datetime) -> str | None:
    """Why an event time is outside [served - skew, now + 1 day], or None when it is inside."""
    if event_ts is None:
        return f"{raw.isoformat()} is outside the representable range"
    if served_at is not None and event_ts < served_at - CLOCK_SKEW:
        return f"{raw.isoformat()} is before its request was served ({served_at.isoformat()} UTC)"
    if event_ts > now + MAX_FUTURE:
        return f"{raw.isoformat()} is more than a day in the future"
    return None


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
                "Malformed body (also: nested deeper than 32 levels, a key twice, NaN) or more than the allowed "
                "number of events.",
                400,
                "1200 events in one batch; the limit is 1000",
            ),
            413: error_response("Body larger than the limit (1 MiB by default).", 413, "Request Entity Too Large"),
            415: error_response(
                "A body that is not application/json.", 415, "the body must be application/json, not text/plain"
            ),
            422: error_response(
                "An unknown item or request id, an item that was not on the request's page, or an event_ts before "
                "the request was served or more than a day in the future.",
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
        off_page: list[str] = []
        bad_times: list[str] = []
        received_at = datetime.now(UTC).replace(tzinfo=None)
        records: list[EventRecord] = []
        ids = np.fromiter((e.item_id for e in data.events), dtype=np.int64, count=len(data.events))
        known = np.logical_or.reduce([b.item_rows(ids) >= 0 for b in bundles])
        for index, (event, is_known) in enumerate(zip(data.events, known, strict=True)):
            if not is_known:
                if event.item_id not in unknown_items:
                    unknown_items.append(event.item_id)
                continue
            served = logs.served(event.request_id)
            if served is None:
                if event.request_id not in unknown_requests:
                    unknown_requests.append(event.request_id)
                continue
            if event.item_id not in served.item_ids:  # attribution needs the item on that request's page
                off_page.append(f"item_id {event.item_id} (events[{index}]) was not on the page of {event.request_id}")
                continue
            event_ts = _utc_naive(event.event_ts)
            problem = _time_problem(event_ts, event.event_ts, served.served_at, received_at)
            if problem is not None or event_ts is None:
                bad_times.append(f"events[{index}].event_ts {problem}")
                continue
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
        if unknown_items or unknown_requests or off_page or bad_times:
            problems = []
            if unknown_items:
                problems.append(_name("item_id", unknown_items))
            if unknown_requests:
                problems.append(_name("request_id", unknown_requests) + " (not served, or served too long ago)")
            problems += off_page[:MAX_NAMED] + bad_times[:MAX_NAMED]
            raise HTTPException(status_code=422, detail="; ".join(problems) + "; no event of this batch was stored")
        await logs.events.append_async(records)
        services.metrics.inc("streamrec_events_logged_total", (), len(records))
        return EventsAccepted(accepted=len(records), event_ids=[r.event_id for r in records])
