"""Crash durability: every impression of every 200 response is in the log exactly once, even after kill -9."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from streamrec.batch.ingest import ingest_logs
from streamrec.core.eventlog import read_stream
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall
from tests.e2e.conftest import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKERS = 8
KILL_AFTER = 240  # 200 responses before the kill


def _drive(url: str, worker: int, stop: threading.Event, ok: list[dict], failures: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        n = 0
        while not stop.is_set():
            user = (worker * 1000 + n) % 350  # a few ids beyond the 300 known users: cold start too
            n += 1
            try:
                response = client.get("/v1/recommendations", params={"user_id": user, "k": 10})
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
                return  # the server is gone
            if response.status_code == 200:
                ok.append(response.json())
            else:
                failures.append(f"{response.status_code}: {response.text[:200]}")


def test_impressions_survive_kill_9_exactly_once(served_copy: Settings) -> None:
    api = ApiServer(served_copy.home).start()
    stop = threading.Event()
    ok: list[dict] = []
    failures: list[str] = []
    threads = [threading.Thread(target=_drive, args=(api.url, w, stop, ok, failures)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        while len(ok) < KILL_AFTER and all(t.is_alive() for t in threads):
            threading.Event().wait(0.01)
        first = ok[0]
        events = {
            "events": [
                {
                    "request_id": first["request_id"],
                    "item_id": first["items"][0]["item_id"],
                    "event_type": "play",
                    "watch_seconds": 12.0,
                    "event_ts": datetime.now(UTC).isoformat(),
                }
            ]
        }
        assert httpx.post(f"{api.url}/v1/events", json=events, timeout=10).status_code == 200
        api.kill()  # mid-load: workers have requests in flight
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        api.kill()
    assert len(ok) >= KILL_AFTER
    assert all(not f[0].isdigit() for f in failures), failures[:5]  # only connection errors, never a 4xx/5xx

    # Restart on the same home: it must come up over the torn log and keep serving.
    restarted = ApiServer(served_copy.home).start()
    try:
        again = httpx.get(f"{restarted.url}/v1/recommendations", params={"user_id": 1, "k": 5}, timeout=10)
        assert again.status_code == 200
        ok.append(again.json())
    finally:
        restarted.stop()

    served = {(p["request_id"], i["position"], i["item_id"]) for p in ok for i in p["items"]}
    logged = Counter(
        (r["request_id"], r["position"], r["item_id"]) for r in read_stream(served_copy.logs_dir, "impressions")
    )
    assert served <= set(logged), f"{len(served - set(logged))} served impressions are not in the log"
    assert max(logged.values()) == 1, "an impression was logged twice"

    ingest_logs(served_copy)
    ids = sorted({p["request_id"] for p in ok})
    with connect(served_copy, read_only=True) as con:
        rows = fetchall(
            con,
            "select request_id, position, item_id from ops.impressions where list_contains(?, request_id)",
            [ids],
        )
        event_rows = fetchall(
            con, "select user_id, item_id, event_type from ops.events where request_id = ?", [first["request_id"]]
        )
    assert set(rows) == served and len(rows) == len(served)
    assert len(event_rows) == 1 and event_rows[0][2] == "play"
