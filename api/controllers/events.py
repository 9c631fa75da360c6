"""`POST /v1/events`: outcome events on served items, stored durably in the event log before the answer."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import JSONBody

from streamrec.api.openapi import error_response
from streamrec.api.schemas import EventBatch, EventsAccepted
from streamrec.api.services.container import Services
from streamrec.api.services.feedback import EventsRefused, record_events


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
        try:
            return await record_events(services, data.events)
        except EventsRefused as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
