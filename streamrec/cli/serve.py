"""`streamrec serve`: the Litestar API under uvicorn; requests are served on each process's event loop.

`--workers N` runs N processes on one port (uvicorn's supervisor binds the socket once and the kernel
hands each connection to a worker). They share exposure and command announcements through a fresh
file under `<home>/run/` (api/services/shared_state.py, docs/adr/0007-shared-serving-state.md); each
writes its own log segments (the segment name carries the pid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamrec.api.config import ApiSettings


def serve(
    settings: ApiSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", workers: int = 1
) -> None:
    """Run the API until interrupted; the bundle loads in the app's lifespan before the first request."""
    import importlib.util
    import os

    import uvicorn

    from streamrec.api.app import create_app
    from streamrec.core.logging_setup import configure_logging

    # uvloop + httptools (C event loop and HTTP parser) when installed; asyncio + h11 otherwise, or when
    # STREAMREC_SERVE_PURE_PYTHON=1 (to compare the two stacks, bench/serve.py).
    configure_logging()
    access_log = settings.access_log  # STREAMREC_ACCESS_LOG; off: /metrics and the impression log count requests
    fast = (
        importlib.util.find_spec("uvloop") is not None
        and importlib.util.find_spec("httptools") is not None
        and not settings.serve_pure_python
    )
    shared: Path | None = None
    if workers > 1:
        # The workers are new processes that build their app from the environment: hand them the shared file there.
        run_dir = settings.home.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        shared = run_dir / f"shared-{os.getpid()}.state"
        shared.unlink(missing_ok=True)
        os.environ["STREAMREC_SHARED_STATE"] = str(shared)
    app = create_app(settings) if workers == 1 else "streamrec.cli.serve:worker_app"
    try:
        _run(uvicorn, app, host, port, fast, log_level, access_log, workers)
    finally:
        if shared is not None:
            shared.unlink(missing_ok=True)


def worker_app() -> Any:
    """The app of one `--workers` process (uvicorn calls this factory in each): StreamRec's logging, then the app."""
    from streamrec.api.app import create_app
    from streamrec.core.logging_setup import configure_logging

    configure_logging()
    return create_app()


def _run(
    uvicorn: Any, app: Any, host: str, port: int, fast: bool, log_level: str, access_log: bool, workers: int
) -> None:
    from streamrec.core.logging_setup import uvicorn_log_config

    uvicorn.run(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host=host,
        port=port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
        log_level=log_level,
        log_config=uvicorn_log_config(access_log),  # uvicorn's lines in StreamRec's one format
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )
