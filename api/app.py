"""The Litestar app factory: routes, dependencies, OpenAPI, error handling and the lifespan that loads the bundle.

Run it with `streamrec serve` (uvicorn). Heavy state (the bundle's models, index and online
features) is loaded once in the lifespan and on admin reload, never per request; the request path
does no database query (the API never opens the warehouse: it reads ACTIVE.json and bundle files
and writes its own logs, which `streamrec ingest` loads later).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread
import numpy as np
import torch
from litestar import Litestar, MediaType, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import Message, Scope

from streamrec.api.config import ApiSettings
from streamrec.api.controllers.admin import AdminController
from streamrec.api.controllers.events import EventController
from streamrec.api.controllers.health import HealthController
from streamrec.api.controllers.metrics import MetricsController
from streamrec.api.controllers.recommendations import RecommendationController
from streamrec.api.controllers.versions import VersionController
from streamrec.api.openapi import assets_router, openapi_config
from streamrec.api.services.container import Services
from streamrec.api.services.fairness import ExposureTracker
from streamrec.api.services.metrics import metrics_middleware_factory
from streamrec.api.services.recommender import Recommender, restore_exposure
from streamrec.api.services.serving import ServingState, freeze_heap
from streamrec.api.services.serving_logs import PeerRequests, ServingLogs, scan_impressions
from streamrec.api.services.shared_state import SYNC_INTERVAL_SECONDS, SharedExposureTracker, SharedState
from streamrec.api.services.snapshot_watch import watch_snapshots
from streamrec.api.strict_json import StrictRequest, StrictStructSchemaPlugin
from streamrec.core.errors import StreamRecError

logger = logging.getLogger("streamrec.api")


def _limit_threads() -> None:
    # Requests run one at a time on the event loop; one intra-op thread leaves the other core to the log
    # syncer, bundle loads and the kernel's network work, and keeps a request's latency free of thread wake-ups.
    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass


async def _restore_from_logs(services: Services, logs: ServingLogs) -> None:
    """Exposure counters and the request map from the impression segments already on disk."""
    scan = await anyio.to_thread.run_sync(scan_impressions, logs.logs_dir, services.config.request_map_size)
    logs.restore(scan)
    bundle = services.state.routing.control
    if bundle is not None:
        if not services.tracker.claim_restore():
            # Another worker added the logged exposure to the shared counters; this one only learns the creators.
            zero = {v: (ids, np.zeros_like(weights)) for v, (ids, weights) in scan.exposure.items()}
            scan = replace(scan, exposure=zero)
        restore_exposure(services.tracker, bundle, scan)
    logger.info("restored %d requests from %d impression segments", len(scan.recent_requests), scan.segments)


async def _follow_announcements(services: Services, seen: int) -> None:
    """Several workers: follow the others' requests; re-read ACTIVE.json, CANARY.json, CURRENT.json on a command.

    `seen` is the generation read before this worker's startup read those files: a command announced while it
    started (a promote and reload reaching a faster worker) is then followed, not taken as already seen.
    """
    assert services.shared is not None
    while True:
        await anyio.sleep(SYNC_INTERVAL_SECONDS)
        if services.logs is not None and services.logs.peers is not None:
            services.logs.peers.catch_up(services.logs)  # the other workers' requests, for event attribution
        generation = services.shared.generation
        if generation != seen:
            seen = generation
            await services.state.sync()


def _lifespan(services: Services):
    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        _limit_threads()
        services.config.home.ensure()
        config = services.config
        logs = ServingLogs(
            config.home.logs_dir, config.request_map_size, config.log_fsync, config.log_fsync_interval_ms / 1000
        )
        if services.shared is not None:
            logs.peers = PeerRequests(logs.logs_dir)
            logs.peers.start_at_current_ends()  # before the startup scan, which reads what exists now
        # before startup reads ACTIVE.json: announcements from here on are followed (see _follow_announcements)
        seen = services.shared.generation if services.shared is not None else 0
        try:
            await services.state.startup()
            await _restore_from_logs(services, logs)
            freeze_heap()  # after the startup scan's garbage is gone: see freeze_heap
            services.logs = logs
            async with anyio.create_task_group() as tasks:
                if services.shared is not None:
                    tasks.start_soon(_follow_announcements, services, seen)
                if config.snapshot_watch_seconds > 0:
                    tasks.start_soon(watch_snapshots, services.state, config.home.home, config.snapshot_watch_seconds)
                yield
                tasks.cancel_scope.cancel()
        finally:
            services.logs = None
            logs.close()

    return lifespan


def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: log the traceback, answer with JSON (never an HTML page) and count it.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        {"status_code": 500, "detail": f"internal error ({type(exc).__name__}); see the server log"},
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


async def _complete_allow_header(message: Message, scope: Scope) -> None:
    """Give OPTIONS answers an `Allow` with every method of the path.

    Litestar builds its automatic OPTIONS handler with the first handler's route, so a path served by two
    handlers (GET and POST /v1/admin/canary) answered `Allow: OPTIONS, POST`.
    """
    if scope.get("method") != "OPTIONS" or message["type"] != "http.response.start":
        return
    routes = [r for r in scope["litestar_app"].routes if r.path == scope["path"]]
    if not routes:
        return
    methods = ", ".join(sorted({"OPTIONS"}.union(*(r.methods for r in routes))))
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
    message["headers"] = [*headers, (b"allow", methods.encode())]


def _log_unavailable(request: Request, exc: Exception) -> Response:
    # The impression/event log cannot be written (disk full, I/O error, a failed background sync): nothing of
    # this request was stored or served, and the client may retry. Not a bug in the request: 503, not 500.
    logger.error("log write failed on %s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, OSError):
        reason = f"the serving log cannot be written: {exc.strerror or exc} (errno {exc.errno})"
    else:  # e.g. the event log refusing appends after a failed background fdatasync
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return Response(
        {"status_code": 503, "detail": f"{reason}; nothing was stored, retry later"},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        media_type=MediaType.JSON,
    )


def _http_error(request: Request, exc: HTTPException) -> Response:
    body: dict = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, media_type=MediaType.JSON, headers=exc.headers)


def create_services(settings: ApiSettings) -> Services:
    """The services one app instance uses (exposed so tests and the bench can build the same objects)."""
    shared = SharedState(Path(settings.shared_state)) if settings.shared_state else None
    tracker = ExposureTracker() if shared is None else SharedExposureTracker(shared)
    return Services(
        config=settings,
        state=ServingState(settings),
        tracker=tracker,
        recommender=Recommender(settings, tracker),
        shared=shared,
    )


def create_app(settings: ApiSettings | None = None, services: Services | None = None) -> Litestar:
    """The serving app; settings default to the environment (ApiSettings.from_env)."""
    settings = settings or ApiSettings.from_env()
    services = services or create_services(settings)
    services.metrics.bind_serving(services)
    return Litestar(
        route_handlers=[
            RecommendationController,
            EventController,
            HealthController,
            VersionController,
            AdminController,
            MetricsController,
            assets_router(),
        ],
        dependencies={"services": Provide(lambda: services, use_cache=True, sync_to_thread=False)},
        state=State({"services": services}),
        lifespan=[_lifespan(services)],
        middleware=[metrics_middleware_factory(services.metrics)],
        exception_handlers={
            HTTPException: _http_error,
            OSError: _log_unavailable,
            StreamRecError: _log_unavailable,
            Exception: _internal_error,
        },
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_body_bytes,
        request_class=StrictRequest,
        before_send=[_complete_allow_header],
        plugins=[StrictStructSchemaPlugin()],
        signature_namespace={"Services": Services},
        debug=False,
        logging_config=None,  # the process's logging is set up once (streamrec.logging_setup), not per app
    )
