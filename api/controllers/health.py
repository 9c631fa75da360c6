"""`GET /v1/health`: liveness (any answer) and readiness (a bundle is loaded): 200 when ready, else 503."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from streamrec.api.schemas import Health
from streamrec.api.services.container import Services

NOT_READY_EXAMPLE = {
    "status": "not_ready",
    "ready": False,
    "model_version": None,
    "candidate_version": None,
    "detail": "no bundle loaded yet",
}


class HealthController(Controller):
    """Probes for load balancers and orchestrators."""

    path = "/v1/health"
    tags = ["operations"]  # noqa: RUF012 - litestar reads class attributes

    @get(
        operation_id="getHealth",
        summary="Liveness and readiness",
        response_description="Ready: a bundle is loaded and the logs are open.",
        responses={
            503: ResponseSpec(
                Health,
                description="Live but not ready: no bundle loaded (detail says why).",
                generate_examples=False,
                examples=[Example(summary="not ready", value=NOT_READY_EXAMPLE)],
            )
        },
    )
    async def health(self, services: NamedDependency[Services]) -> Response[Health]:
        """Ready once a bundle is loaded and the logs are open."""
        routing = services.state.routing
        ready = routing.control is not None and services.logs is not None
        body = Health(
            status="ok" if ready else "not_ready",
            ready=ready,
            model_version=routing.control.version if routing.control else None,
            candidate_version=routing.candidate.version if routing.candidate else None,
            detail=None if ready else (services.state.load_error or "no bundle loaded yet"),
        )
        return Response(body, status_code=200 if ready else 503)
