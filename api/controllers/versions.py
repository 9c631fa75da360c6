"""`GET /v1/versions/active`: which bundle serves (and which is being canaried)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from streamrec.api.schemas import ActiveVersion, ErrorBody
from streamrec.api.services.container import Services


class VersionController(Controller):
    """The serving bundle's identity."""

    path = "/v1/versions"
    tags = ["operations"]  # noqa: RUF012 - litestar reads class attributes

    @get("/active", operation_id="getActiveVersion", responses={503: ResponseSpec(ErrorBody, description="No bundle.")})
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
