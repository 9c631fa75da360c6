"""`streamrec canary start|status|hold|rollback` against a real server, over HTTP with the admin token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle
from tests.e2e.conftest import ADMIN_TOKEN, ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_canary_commands_drive_the_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_bundle(home / "artifacts", "v1", n_users=50, n_items=200, seed=1)
    write_synthetic_bundle(home / "artifacts", "v2", n_users=50, n_items=200, seed=2, first_item_id=5_001)
    write_active_pointer(home / "artifacts", "v1")
    api = ApiServer(home).start()
    env = {**os.environ, "STREAMREC_HOME": str(home), "STREAMREC_API_URL": api.url}

    def canary(*args: str, token: str | None = ADMIN_TOKEN) -> subprocess.CompletedProcess:
        run_env = (
            {**env, "STREAMREC_ADMIN_TOKEN": token}
            if token
            else {k: v for k, v in env.items() if k != "STREAMREC_ADMIN_TOKEN"}
        )
        return subprocess.run(
            [sys.executable, "-m", "streamrec", "canary", *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        started = canary("start", "v2", "--share", "1.0")
        assert started.returncode == 0, started.stderr
        page = httpx.get(f"{api.url}/v1/recommendations", params={"user_id": 3}).json()
        assert page["model_version"] == "v2" and page["canary_phase"] == "phase1"
        assert "running" in canary("status").stdout
        assert canary("hold").returncode == 0
        assert httpx.get(f"{api.url}/v1/recommendations", params={"user_id": 3}).json()["model_version"] == "v1"
        denied = canary("status", token="wrong")
        assert denied.returncode == 1 and "401" in denied.stderr
        assert canary("rollback").returncode == 0
        again = canary("rollback")
        assert again.returncode == 1 and "409" in again.stderr and "nothing to roll back" in again.stderr
    finally:
        api.stop()
