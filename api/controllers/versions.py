"""`GET /v1/versions/active`: which bundle serves (and which is being canaried)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from streamrec.api.openapi import error_response
from streamrec.api.schemas import ActiveVersion
from streamrec.api.services.container import Services


class VersionController(Controller):
    """The serving bundle's identity."""

    path = "/v1/versions"
    tags = ["operations"]  # noqa: RUF012 - litestar reads class attributes

    @get(
        "/active",
        operation_id="getActiveVersion",
        summary="The serving bundle",
        response_description="Version, hashes and size of the control bundle, and the canary candidate.",
        responses={503: error_response("No bundle loaded yet.", 503, "no bundle loaded yet")},
    )
    async def active(self, services: NamedDependency[Services]) -> ActiveVersion:
        """Version, manifest and contract hashes of the control bundle."""
        routing, _ = services.ready_routing()
        bundle = routing.control
        assert bundle is not None
        return ActiveVersion(
            version=bundle.version,
            manifest_sha256=bundle.manifest_sha256,
            contract_sha256=bundle.contract_sha256,
            index_kind=bundle.index_kind,
            n_items=bundle.n_items,
            loaded_at=bundle.loaded_at,
            promoted_at=bundle.promoted_at,
            candidate_version=routing.candidate.version if routing.candidate else None,
        )
