"""The API never holds the warehouse: `streamrec build` and a read-only query succeed while it takes load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx
import pytest

from tests.e2e.conftest import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_build_and_query_while_serving(server: ApiServer) -> None:
    stop = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            n = 0
            while not stop.is_set():
                n += 1
                statuses.append(client.get("/v1/recommendations", params={"user_id": n % 300, "k": 10}).status_code)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    env = {**os.environ, "STREAMREC_HOME": str(server.home)}
    cli = [sys.executable, "-m", "streamrec"]
    try:
        query = subprocess.run(
            [*cli, "sql", "select count(*) as n from features.user_features"], env=env, capture_output=True, text=True
        )
        # Features only: the evaluation models gate on model quality, which is not what this test is about.
        build = subprocess.run(
            [*cli, "build", "--select", "path:models/staging path:models/intermediate path:models/features"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        query_after = subprocess.run(
            [*cli, "sql", "select count(*) as n from features.item_features"], env=env, capture_output=True, text=True
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert query.returncode == 0, query.stderr
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert query_after.returncode == 0, query_after.stderr
    assert len(statuses) > 20 and set(statuses) == {200}
