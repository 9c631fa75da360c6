"""`GET /metrics`: Prometheus text exposition (prometheus_client)."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency

from streamrec.api.services.container import Services
from streamrec.api.services.metrics import CONTENT_TYPE


class MetricsController(Controller):
    """Counters, histograms, process metrics and the serving info gauge for scraping."""

    path = "/metrics"
    tags = ["operations"]  # noqa: RUF012 - litestar reads class attributes

    @get(
        operation_id="getMetrics",
        summary="Prometheus metrics",
        response_description="The Prometheus text exposition format 0.0.4.",
        media_type=CONTENT_TYPE,
    )
    async def metrics(self, services: NamedDependency[Services]) -> Response[bytes]:
        """Requests by endpoint/status, latency histograms, impressions and events logged, errors, log fsyncs,
        `streamrec_serving_info` (version, snapshot, canary) and the process's CPU, memory and file descriptors."""
        # The header set whole: as a media_type Litestar would append a second `charset=utf-8`.
        return Response(services.metrics.render(), headers={"content-type": CONTENT_TYPE})
