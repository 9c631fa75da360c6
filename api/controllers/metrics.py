"""`GET /metrics`: Prometheus text exposition."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency

from streamrec.api.services.container import Services
from streamrec.api.services.metrics import CONTENT_TYPE, render_log_syncs


class MetricsController(Controller):
    """Counters and histograms for scraping."""

    path = "/metrics"
    tags = ["operations"]  # noqa: RUF012 - litestar reads class attributes

    @get(operation_id="getMetrics", media_type=CONTENT_TYPE)
    async def metrics(self, services: NamedDependency[Services]) -> Response[str]:
        """Request counts by endpoint/status, latency histograms, impressions and events logged, errors, log fsyncs."""
        text = services.metrics.render()
        if services.logs is not None:
            text += render_log_syncs(services.logs.impressions.stats.syncs, services.logs.events.stats.syncs)
        return Response(text, media_type=CONTENT_TYPE)
