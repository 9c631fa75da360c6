"""`streamrec demo` (what `make demo` runs): the whole loop on a demo-sized synthetic dataset.

init → generate → build → reference capture → build (with the PSI test armed) → train → promote →
build evaluation → offline metrics → serve over HTTP with a few hundred requests and events → ingest.
Every step is the same function the CLI command of that name runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from streamrec.errors import StreamRecError
from streamrec.settings import Settings
from streamrec.warehouse import connect, fetchall, table_exists

console = Console()


def _step(title: str) -> None:
    console.rule(f"[bold]{title}")


def run_demo(settings: Settings, users: int = 2_000, items: int = 1_000, requests: int = 300) -> None:
    """Run every stage in order on a fresh STREAMREC_HOME; raise StreamRecError at the first failure."""
    from models_ml.registry import promote
    from models_ml.train import train
    from streamrec.build import build
    from streamrec.generate import generate
    from streamrec.ingest import ingest_logs
    from streamrec.reference import capture
    from streamrec.registry import init_db

    started = time.monotonic()
    os.environ["STREAMREC_HOME"] = str(settings.home)  # dbt's profile reads it
    _step("1. init: alembic upgrade head")
    console.print(f"migration {init_db(settings)} in {settings.warehouse_path}")
    _step("2. generate synthetic StreamRec data")
    console.print(generate(settings, users=users, items=items, days=60, seed=7))
    _step("3. dbt build: staging, contract-enforced features, training table, tests")
    build(settings)
    _step("4. reference capture: distributions the PSI test compares against")
    console.print(capture(settings, tag="demo"))
    _step("5. dbt build again, PSI test armed")
    build(settings)
    _step("6. train: two-tower + FAISS + ranker, one co-versioned bundle")
    summary = train(settings, epochs=3, seed=7, version=None)
    console.print(summary)
    version = _newest_version(settings)
    _step(f"7. promote {version}")
    console.print(promote(settings, version=version, by="demo", reason="make demo"))
    _step("8. offline evaluation in SQL (dbt models/evaluation)")
    build(settings, select="evaluation")
    _print_offline_metrics(settings)
    _step("9. serve over HTTP, send requests and events")
    _serve_and_drive(settings, requests=requests)
    _step("10. ingest the impression and event logs into the warehouse")
    console.print(ingest_logs(settings))
    console.print(
        f"\n[bold green]demo finished[/] in {time.monotonic() - started:.0f} s. "
        f"Warehouse: {settings.warehouse_path}  bundles: {settings.artifacts_dir}  logs: {settings.logs_dir}\n"
        f"Try: .venv/bin/streamrec sql \"select * from evaluation.offline_metrics\""
    )


def _newest_version(settings: Settings) -> str:
    from models_ml.registry import list_versions

    rows = list_versions(settings)
    if not rows:
        raise StreamRecError("training registered no version")
    return max(rows, key=lambda r: str(r["created_at"]))["version"]


def _print_offline_metrics(settings: Settings) -> None:
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "evaluation", "offline_metrics"):
            console.print("evaluation.offline_metrics not built")
            return
        result = con.execute("select * from evaluation.offline_metrics order by version, policy")
        names = [d[0] for d in result.description]
        rows = result.fetchall()
    table = Table(*names, title="offline metrics (held-out users, temporal split)")
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_and_drive(settings: Settings, requests: int) -> None:
    port = _free_port()
    log_path = settings.logs_dir / "server.log"
    with open(log_path, "ab") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamrec.cli", "serve", "--port", str(port)],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "STREAMREC_HOME": str(settings.home)},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server, log_path)
        user_ids = _demo_user_ids(settings, requests)
        served = events = 0
        with httpx.Client(base_url=base, timeout=10.0) as client:
            for user_id in user_ids:
                response = client.get("/v1/recommendations", params={"user_id": user_id, "k": 10})
                response.raise_for_status()
                body = response.json()
                served += 1
                top = body["items"][:2]
                batch = [
                    {"request_id": body["request_id"], "item_id": it["item_id"], "event_type": "play",
                     "watch_seconds": 120.0}
                    for it in top
                ]
                client.post("/v1/events", json={"events": batch}).raise_for_status()
                events += len(batch)
            metrics = client.get("/metrics").text
    finally:
        server.terminate()
        server.wait(timeout=20)
    logged = [line for line in metrics.splitlines() if line.startswith("streamrec_impressions_logged_total")]
    console.print(f"{served} recommendation requests and {events} events over HTTP on {base}")
    console.print(f"{logged[0] if logged else ''}  server log: {log_path}")
    console.print(f"impression and event logs: {settings.logs_dir}")


def _wait_ready(base: str, server: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise StreamRecError(f"the server exited with code {server.returncode}; see {log_path}")
        try:
            if httpx.get(f"{base}/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise StreamRecError(f"the server was not ready within {timeout:.0f} s; see {log_path}")


def _demo_user_ids(settings: Settings, count: int) -> list[int]:
    with connect(settings, read_only=True) as con:
        rows = fetchall(con, "select user_id from raw.users order by hash(user_id) limit ?", [count])
    known = [int(r[0]) for r in rows]
    return known + [10**9 + i for i in range(max(1, count // 50))]  # a few unknown users: cold start
