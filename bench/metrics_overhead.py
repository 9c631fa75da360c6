"""Cost of the serving metrics per request (`Metrics` as the API calls it on every GET /v1/recommendations).

    .venv/bin/python bench/metrics_overhead.py [--compare OLD_METRICS_PY]

One request records a request counter and latency histogram (`observe_request`), the pipeline histogram
(`observe_pipeline`) and the impressions counter (`inc`); the figure is microseconds per request, best of
five runs of 100,000. With `--compare`, the same calls on another implementation of the class (for
example the hand-written one: `git show 3f34fe4:api/services/metrics.py > /tmp/old_metrics.py`) in the
same process, as a ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

from streamrec.api.services.metrics import Metrics

CALLS = 100_000


def per_request_us(metrics: Any, calls: int = CALLS) -> float:
    """Best of five: microseconds for one request's metric updates."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            metrics.observe_request("/v1/recommendations", "GET", 200, 0.0031)
            metrics.observe_pipeline("personalized", 0.0012)
            metrics.inc("streamrec_impressions_logged_total", (("policy", "personalized"),), 10)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def main() -> None:
    """Print the per-request cost (and the ratio to `--compare`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--compare", type=Path, help="a metrics.py whose Metrics class to measure alongside")
    args = parser.parse_args()
    current = per_request_us(Metrics())
    print(f"prometheus_client Metrics: {current:.1f} us per request")
    if args.compare:
        spec = importlib.util.spec_from_file_location("other_metrics", args.compare)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        other = per_request_us(module.Metrics())
        print(f"{args.compare}: {other:.1f} us per request; ratio {current / other:.2f}")


if __name__ == "__main__":
    main()
