"""Feedback events: attributed to the page they answer, checked, and stored durably before the answer.

An event is accepted only for an item of the serving catalogue that was on the page of a request this
server still remembers, at a time between that page being served and a day from now; a batch is stored
whole or not at all, so a refused batch leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from streamrec.api.schemas import EventsAccepted, FeedbackEvent
from streamrec.api.services.container import Services
from streamrec.api.services.serving_logs import event_id
from streamrec.core.errors import StreamRecError
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


class EventsRefused(StreamRecError):
    """The batch names unknown ids, items off their page or impossible times; nothing of it was stored."""


async def record_events(services: Services, events: Sequence[FeedbackEvent]) -> EventsAccepted:
    """Store a batch of events: all of them or, on any unknown id, none (EventsRefused naming the ids)."""
    routing, logs = services.ready_routing()
    bundles = [b for b in (routing.control, routing.candidate) if b is not None]
    unknown_items: list[int] = []
    unknown_requests: list[str] = []
    off_page: list[str] = []
    bad_times: list[str] = []
    received_at = datetime.now(UTC).replace(tzinfo=None)
    records: list[EventRecord] = []
    if logs.peers is not None and any(logs.served(e.request_id) is None for e in events):
        logs.peers.catch_up(logs)  # another worker may have served it (streamrec serve --workers)
    ids = np.fromiter((e.item_id for e in events), dtype=np.int64, count=len(events))
    known = np.logical_or.reduce([b.item_rows(ids) >= 0 for b in bundles])
    for index, (event, is_known) in enumerate(zip(events, known, strict=True)):
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
        raise EventsRefused("; ".join(problems) + "; no event of this batch was stored")
    await logs.events.append_async(records)
    services.metrics.inc("streamrec_events_logged_total", (), len(records))
    return EventsAccepted(accepted=len(records), event_ids=[r.event_id for r in records])
