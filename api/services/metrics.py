"""Prometheus metrics in the text exposition format (0.0.4), written by hand: prometheus_client is not a dependency.

Counters and histograms are plain dicts guarded by one lock; `render()` produces the text that
`GET /metrics` returns. The ASGI middleware records every routed request by its path template
(`/v1/recommendations`, not the concrete URL) so label cardinality stays bounded.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

from litestar.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Histogram:
    """Cumulative buckets, sum and count per label set."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts: dict[Labels, list[int]] = defaultdict(lambda: [0] * (len(self.buckets) + 1))
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, labels: Labels, value: float) -> None:
        """Count one observation in its bucket (the last slot is +Inf)."""
        self.counts[labels][bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value


class Metrics:
    """The serving process's counters and histograms; thread-safe, rendered on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._help: dict[str, str] = {
            "streamrec_http_requests_total": "HTTP requests by endpoint, method and status code.",
            "streamrec_impressions_logged_total": "Impressions written durably to the impression log, by policy.",
            "streamrec_events_logged_total": "Outcome events written durably to the event log.",
            "streamrec_errors_total": "Requests that failed with a 5xx or an unhandled exception, by endpoint.",
        }
        self._latency = Histogram(LATENCY_BUCKETS)
        self._pipeline = Histogram(LATENCY_BUCKETS)

    def inc(self, name: str, labels: Labels = (), value: float = 1.0) -> None:
        """Add `value` to a counter."""
        with self._lock:
            self._counters[name][labels] += value

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Record one HTTP request."""
        with self._lock:
            self._counters["streamrec_http_requests_total"][
                (("endpoint", endpoint), ("method", method), ("status", str(status)))
            ] += 1
            self._latency.observe((("endpoint", endpoint),), seconds)
            if status >= 500:
                self._counters["streamrec_errors_total"][(("endpoint", endpoint),)] += 1

    def observe_pipeline(self, policy: str, seconds: float) -> None:
        """Record the in-process recommendation time (features, towers, FAISS, ranker, re-rank, exploration)."""
        with self._lock:
            self._pipeline.observe((("policy", policy),), seconds)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        lines: list[str] = []
        with self._lock:
            for name in sorted(set(self._help) | set(self._counters)):
                lines.append(f"# HELP {name} {self._help.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
                for labels, value in sorted(self._counters.get(name, {}).items()):
                    lines.append(f"{name}{_labels(labels)} {_number(value)}")
            for name, histogram, text in (
                ("streamrec_http_request_duration_seconds", self._latency, "HTTP request latency by endpoint."),
                ("streamrec_recommend_pipeline_seconds", self._pipeline, "In-process recommendation time by policy."),
            ):
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} histogram")
                for labels, counts in sorted(histogram.counts.items()):
                    cumulative = 0
                    for bound, count in zip((*histogram.buckets, float("inf")), counts, strict=True):
                        cumulative += count
                        le = "+Inf" if bound == float("inf") else repr(bound)
                        lines.append(f"{name}_bucket{_labels(labels, (('le', le),))} {cumulative}")
                    lines.append(f"{name}_sum{_labels(labels)} {histogram.sums[labels]!r}")
                    lines.append(f"{name}_count{_labels(labels)} {cumulative}")
        return "\n".join(lines) + "\n"


def render_log_syncs(impressions: int, events: int) -> str:
    """fdatasync calls of the two logs (DurableLog.stats.syncs), kept by the logs themselves, in the text format."""
    name = "streamrec_log_fsyncs_total"
    return (
        f"# HELP {name} fdatasync calls made on the impression and event logs (STREAMREC_LOG_FSYNC).\n"
        f"# TYPE {name} counter\n"
        f'{name}{{stream="impressions"}} {impressions}\n'
        f'{name}{{stream="events"}} {events}\n'
    )


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
