"""`streamrec serve`: the Litestar API under uvicorn (one process; model work runs in its thread pool)."""

from __future__ import annotations

from api.config import ApiSettings


def serve(settings: ApiSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the API until interrupted; the bundle loads in the app's lifespan before the first request."""
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # every request is already counted in /metrics and every impression logged
        timeout_graceful_shutdown=10,
    )
