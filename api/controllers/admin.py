"""Admin endpoints (bearer token from STREAMREC_ADMIN_TOKEN): reload the bundle or the snapshot, drive the canary.

With several workers a command reaches one of them; `services.announce()` tells the others to follow
(api/services/shared_state.py).
"""

from __future__ import annotations

import hmac

from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody

from streamrec.api.openapi import error_response
from streamrec.api.schemas import CanaryCommand, CanaryStatus, ReloadResult, SnapshotResult
from streamrec.api.services.canary_state import CanaryConflict, CanaryState
from streamrec.api.services.container import Services
from streamrec.core.errors import StreamRecError


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """401 unless `Authorization: Bearer <STREAMREC_ADMIN_TOKEN>`; with no token configured admin is disabled."""
    if connection.scope.get("method") == "OPTIONS":  # CORS preflight and `Allow` discovery carry no credentials
        return
    services: NamedDependency[Services] = connection.app.state.services
    expected = services.config.admin_token
    header = connection.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")  # RFC 6750: `Bearer` (any case), one space, the token as sent
    if not expected:
        raise NotAuthorizedException(detail="admin is disabled: STREAMREC_ADMIN_TOKEN is not set on the server")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise NotAuthorizedException(detail="missing or wrong bearer token")


def _status(
    services: NamedDependency[Services], state: CanaryState | None = None, detail: str | None = None
) -> CanaryStatus:
    routing = services.state.routing
    state = state or routing.canary
    return CanaryStatus(
        state=state.state,  # type: ignore[arg-type]
        control_version=routing.control.version if routing.control else None,
        candidate_version=state.candidate_version,
        phase=state.phase,
        share=state.share,
        started_at=state.started_at,
        detail=detail,
    )


ADMIN_ERRORS = {
    401: error_response("Missing or wrong bearer token, or admin disabled.", 401, "missing or wrong bearer token"),
    409: error_response(
        "The command does not apply now, or the bundle failed to load.",
        409,
        "no canary is running; `advance` needs a running canary",
    ),
}


class AdminController(Controller):
    """Operations that change what serves."""

    path = "/v1/admin"
    tags = ["admin"]  # noqa: RUF012 - litestar reads class attributes
    guards = [admin_guard]  # noqa: RUF012
    security = [{"bearer": []}]  # noqa: RUF012

    @post(
        "/reload",
        operation_id="reloadBundle",
        summary="Reload the active bundle",
        response_description="The bundle now serving and whether it changed.",
        status_code=200,
        responses=ADMIN_ERRORS,
    )
    async def reload(self, services: NamedDependency[Services]) -> ReloadResult:
        """Load the bundle artifacts/ACTIVE.json names (verified) and swap it in atomically."""
        try:
            version, previous, changed = await services.state.reload()
        except StreamRecError as exc:
            detail = f"reload failed, still serving the previous bundle: {exc}"
            raise HTTPException(status_code=409, detail=detail) from exc
        services.announce()
        return ReloadResult(version=version, previous_version=previous, changed=changed)

    @post(
        "/snapshot",
        operation_id="loadSnapshot",
        summary="Swap in the current feature snapshot",
        response_description="The snapshot now serving, whether it changed, and its user coverage.",
        status_code=200,
        responses=ADMIN_ERRORS,
    )
    async def snapshot(self, services: NamedDependency[Services]) -> SnapshotResult:
        """Load what snapshots/CURRENT.json names (verified) and swap it in; a refused one keeps the old serving."""
        try:
            snapshot_id, previous, changed, coverage = await services.state.load_snapshot()
        except StreamRecError as exc:
            raise HTTPException(
                status_code=409, detail=f"snapshot refused, still serving the previous one: {exc}"
            ) from exc
        services.announce()
        assert coverage is not None
        return SnapshotResult(
            snapshot_id=snapshot_id,
            previous_snapshot_id=previous,
            changed=changed,
            snapshot_users=coverage.snapshot_users,
            bundle_users=coverage.bundle_users,
            only_in_snapshot=coverage.only_in_snapshot,
            only_in_bundle=coverage.only_in_bundle,
        )

    @get(
        "/canary",
        operation_id="getCanary",
        summary="Canary status",
        response_description="The canary's state, phase, share and versions.",
        responses=ADMIN_ERRORS,
    )
    async def canary_status(self, services: NamedDependency[Services]) -> CanaryStatus:
        """The canary's state."""
        return _status(services)

    @post(
        "/canary",
        operation_id="commandCanary",
        summary="Start, advance, hold or roll back the canary",
        response_description="The canary's state after the command.",
        status_code=200,
        responses={
            400: error_response(
                "Malformed command body (also: nested deeper than 32 levels, a key twice, NaN).",
                400,
                "Validation failed for POST /v1/admin/canary",
            ),
            415: error_response(
                "A body that is not application/json.", 415, "the body must be application/json, not text/plain"
            ),
            **ADMIN_ERRORS,
        },
    )
    async def canary(self, data: JSONBody[CanaryCommand], services: NamedDependency[Services]) -> CanaryStatus:
        """start {candidate_version, phase, share} | advance | hold | rollback."""
        state = services.state
        try:
            if data.action == "start":
                if data.candidate_version is None:
                    raise CanaryConflict("`start` needs candidate_version")
                new = await state.canary_start(data.candidate_version, data.phase or 1, data.share)
            elif data.action == "advance":
                new = await state.canary_advance()
            elif data.action == "hold":
                new = await state.canary_hold()
            else:
                new = await state.canary_rollback()
        except StreamRecError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        services.announce()
        return _status(services, new)
