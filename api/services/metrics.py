"""Prometheus metrics for `GET /metrics`, kept by `prometheus_client` in one registry per app.

A registry per app (not the library's global one) so several apps in one process (tests, the bench)
keep separate counts. Besides the request counters and histograms it holds the process collector
(CPU, memory, open fds, start time), the platform collector (Python version) and, once
`bind_serving` is called, collectors read at scrape time: `streamrec_serving_info` (which bundle,
feature snapshot and canary serve) and `streamrec_log_fsyncs_total` (kept by the logs themselves).

The ASGI middleware records every routed request by its path template (`/v1/recommendations`, not
the concrete URL) so label cardinality stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import prometheus_client
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the container imports this module
    from streamrec.api.services.container import Services

# The text format every Prometheus version scrapes; one charset (Litestar must not append a second).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Buckets around the latencies measured in docs/benchmarks.md ("Serving"): in process p50 1.2 ms and p99
# 2.0 ms; over HTTP p50 1.6-6 ms, p99 9-48 ms under load, the p99 goal 25 ms, p99.9 up to ~115 ms at 16
# connections. Fine steps where those quantiles fall, a few coarse ones for stalls (bundle loads, GC).
HTTP_BUCKETS = (
    0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025,
    0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
PIPELINE_BUCKETS = (
    0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002, 0.0025, 0.003, 0.004, 0.005,
    0.0075, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip

# Counters expose `_total` only: the `_created` series would double every counter's series count.
prometheus_client.disable_created_metrics()


class _ScrapeTimeCollector(Collector):
    """Metric families computed by a callback on every scrape."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        """What the callback yields now."""
        yield from self._families()


class Metrics:
    """The serving process's metrics; thread-safe (prometheus_client locks each value)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.PlatformCollector(registry=self.registry)
        self._requests = Counter(
            "streamrec_http_requests",
            "HTTP requests by endpoint, method and status code.",
            ("endpoint", "method", "status"),
            registry=self.registry,
        )
        self._errors = Counter(
            "streamrec_errors",
            "Requests that failed with a 5xx or an unhandled exception, by endpoint.",
            ("endpoint",),
            registry=self.registry,
        )
        self._impressions = Counter(
            "streamrec_impressions_logged",
            "Impressions written durably to the impression log, by policy.",
            ("policy",),
            registry=self.registry,
        )
        self._events = Counter(
            "streamrec_events_logged", "Outcome events written durably to the event log.", registry=self.registry
        )
        self._latency = Histogram(
            "streamrec_http_request_duration_seconds",
            "HTTP request latency by endpoint.",
            ("endpoint",),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self._pipeline = Histogram(
            "streamrec_recommend_pipeline_seconds",
            "In-process recommendation time by policy.",
            ("policy",),
            buckets=PIPELINE_BUCKETS,
            registry=self.registry,
        )
        self._bound = False
        # Label children by label values: `.labels()` validates and locks on every call (twice the cost per
        # request, bench/metrics_overhead.py); a dict lookup does not. Racing inserts store the same child.
        self._children: dict[tuple[str, ...], Any] = {}

    def inc(self, name: str, labels: tuple[tuple[str, str], ...] = (), value: float = 1.0) -> None:
        """Add `value` to the counter `name`: streamrec_impressions_logged_total or streamrec_events_logged_total."""
        if name == "streamrec_events_logged_total" and not labels:
            self._events.inc(value)
            return
        if name != "streamrec_impressions_logged_total":
            raise KeyError(name)
        self._child(self._impressions, "impressions", *(v for _, v in labels)).inc(value)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Record one HTTP request."""
        self._child(self._requests, "requests", endpoint, method, str(status)).inc()
        self._child(self._latency, "latency", endpoint).observe(seconds)
        if status >= 500:
            self._child(self._errors, "errors", endpoint).inc()

    def observe_pipeline(self, policy: str, seconds: float) -> None:
        """Record the in-process recommendation time (features, towers, FAISS, ranker, re-rank, exploration)."""
        self._child(self._pipeline, "pipeline", policy).observe(seconds)

    def _child(self, metric: Any, name: str, *values: str) -> Any:
        key = (name, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def bind_serving(self, services: Services) -> None:
        """Add the scrape-time collectors that read `services` (api.services.container.Services); once per registry."""
        if self._bound:
            return
        self._bound = True
        self.registry.register(_ScrapeTimeCollector(lambda: serving_families(services)))

    def render(self) -> bytes:
        """The text exposition (format 0.0.4) of every metric."""
        return generate_latest(self.registry)


def serving_families(services: Services) -> Iterator[Metric]:
    """`streamrec_serving_info` and `streamrec_log_fsyncs_total` from the services' current state."""
    routing = services.state.routing
    info = GaugeMetricFamily(
        "streamrec_serving_info",
        "Always 1: the control bundle's version and feature snapshot, the canary candidate and the canary's state.",
        labels=("version", "snapshot", "candidate_version", "canary_state", "canary_phase"),
    )
    control = routing.control
    if control is not None:
        canary = routing.canary
        info.add_metric(
            (
                control.version,
                control.snapshot_as_of or "",
                routing.candidate.version if routing.candidate is not None else "",
                canary.state,
                canary.phase_label,
            ),
            1.0,
        )
    yield info
    logs = services.logs
    if logs is not None:
        syncs = CounterMetricFamily(
            "streamrec_log_fsyncs",
            "fdatasync calls made on the impression and event logs (STREAMREC_LOG_FSYNC).",
            labels=("stream",),
        )
        syncs.add_metric(("impressions",), logs.impressions.stats.syncs)
        syncs.add_metric(("events",), logs.events.stats.syncs)
        yield syncs


def metrics_middleware_factory(metrics: Metrics):
    """An ASGI middleware recording status and latency of every routed HTTP request into `metrics`."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                metrics.observe_request(
                    scope.get("path_template") or "unmatched", scope["method"], status, time.perf_counter() - started
                )

        return wrapped

    return middleware
