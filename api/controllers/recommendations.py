"""`GET /v1/recommendations`: one page per user, every slot written to the impression log before the response."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from streamrec.api.openapi import error_response
from streamrec.api.schemas import MAX_INT64, Recommendations
from streamrec.api.services.container import Services
from streamrec.api.services.fairness import LANGUAGES
from streamrec.api.services.pages import serve_page

ALLOWED_PARAMS = frozenset({"user_id", "k", "language"})
INTEGER_PARAMS = ("user_id", "k")
_DECIMAL = re.compile(r"[0-9]{1,16}")  # ASCII digits only: no 1e3, 1.0, +1, ² or 0x10
Language = Literal[LANGUAGES]  # type: ignore[valid-type]


def _check_query(request: Request) -> None:
    """400 for what the typed parameters let through: unknown or repeated names, integers not in plain digits."""
    params = request.query_params
    unknown = sorted(set(params) - ALLOWED_PARAMS)
    if unknown:
        names = ", ".join(unknown)
        raise ValidationException(detail=f"unknown query parameter(s) {names}; allowed: user_id, k, language")
    for name in sorted(set(params)):
        values = params.getall(name)
        if len(values) > 1:
            raise ValidationException(detail=f"query parameter {name} given {len(values)} times; give it once")
    for name in INTEGER_PARAMS:
        value = params.get(name)
        if value is not None and not _DECIMAL.fullmatch(value):
            raise ValidationException(detail=f"query parameter {name}={value!r} is not a whole number in plain digits")


class RecommendationController(Controller):
    """Personalised, holdout and cold-start recommendations."""

    path = "/v1/recommendations"
    tags = ["recommendations"]  # noqa: RUF012 - litestar reads class attributes

    @get(
        operation_id="getRecommendations",
        summary="Recommend a page of items",
        response_description="The page, each item with its score, slot and logging propensity.",
        responses={
            400: error_response(
                "Bad query: missing/non-integer user_id, k outside 1..500, unknown or repeated parameter, "
                "an integer not in plain digits (1e3, 1.0).",
                400,
                "unknown query parameter(s) user; allowed: user_id, k, language",
            ),
            503: error_response("No bundle loaded yet.", 503, "no bundle loaded yet"),
        },
    )
    async def recommend(
        self,
        request: Request,
        services: NamedDependency[Services],
        user_id: Annotated[
            int, Parameter(ge=0, le=MAX_INT64, description="User to recommend for (decimal digits, given once).")
        ],
        k: Annotated[int, Parameter(ge=1, le=500, description="Page size (decimal digits).")] = 10,
        language: Annotated[
            Language | None, Parameter(description="Creator language for cold-start users (ignored otherwise).")
        ] = None,
    ) -> Recommendations:
        """A page of k items; `propensity` is each item's probability at its slot under the logging policy."""
        started = time.perf_counter()
        _check_query(request)
        return await serve_page(services, user_id, k, language, started)
