"""`streamrec serve`: the Litestar API under uvicorn (one process; requests are served on its event loop)."""

from __future__ import annotations

from streamrec.api.config import ApiSettings


def serve(settings: ApiSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the API until interrupted; the bundle loads in the app's lifespan before the first request."""
    import importlib.util

    import uvicorn

    from streamrec.api.app import create_app
    from streamrec.core.logging_setup import configure_logging, uvicorn_log_config

    # uvloop + httptools (C event loop and HTTP parser) when installed; asyncio + h11 otherwise, or when
    # STREAMREC_SERVE_PURE_PYTHON=1 (to compare the two stacks, bench/serve.py).
    configure_logging()
    access_log = settings.access_log  # STREAMREC_ACCESS_LOG; off: /metrics and the impression log count requests
    fast = (
        importlib.util.find_spec("uvloop") is not None
        and importlib.util.find_spec("httptools") is not None
        and not settings.serve_pure_python
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
        log_level=log_level,
        log_config=uvicorn_log_config(access_log),  # uvicorn's lines in StreamRec's one format
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )
