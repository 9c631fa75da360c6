"""Issue 11 cases 5, 6 and 7: what serves is what the registry recorded, and a bad pointer never stops the server.

5. A malformed ACTIVE.json (`[]`, `"v3"`, non-UTF-8 bytes, a missing field): reload answers 409 and keeps
   serving; a server started over it is live but not ready (503 naming the file) and recovers on the
   next good reload.
6. ACTIVE.json is a sealed projection of ops.promotions: rewriting it by hand to another version, or
   restoring an older copy, is refused while ops.promotions says otherwise; `streamrec versions` rewrites it.
7. A canary may only load a registered bundle, verified against its registered manifest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from streamrec.api.app import create_app
from streamrec.api.config import ApiSettings
from streamrec.core.settings import Settings
from streamrec.lab.server_process import free_port
from tests.faults.conftest import assert_no_traceback, cli

TOKEN = "faults-pointer-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MALFORMED = [b"[]", b'"v3"', b"\xff\xfe\x00garbage", b'{"version": "v1"}', b"{", b""]


@pytest.fixture
def home(registered_home: Path, tmp_path: Path) -> Settings:
    target = tmp_path / "home"
    shutil.copytree(registered_home, target)
    shutil.copy(registered_home.parent / "ACTIVE.v1.json", tmp_path / "ACTIVE.v1.json")
    return Settings(home=target)


@pytest.fixture
def client(home: Settings) -> Iterator[TestClient]:
    env = {"STREAMREC_HOME": str(home.home), "STREAMREC_ADMIN_TOKEN": TOKEN, "STREAMREC_SEED": "1"}
    with TestClient(create_app(ApiSettings.from_env(env))) as test_client:
        yield test_client


def _serving(client: TestClient) -> str:
    return client.get("/v1/health").json()["model_version"]


def _pointer(home: Settings) -> Path:
    return home.artifacts_dir / "ACTIVE.json"


# --- case 5 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", MALFORMED)
def test_a_malformed_pointer_is_409_and_the_old_bundle_keeps_serving(
    client: TestClient, home: Settings, content: bytes
) -> None:
    assert _serving(client) == "v2"
    _pointer(home).write_bytes(content)
    response = client.post("/v1/admin/reload", headers=AUTH)
    assert response.status_code == 409, response.text
    assert "ACTIVE.json" in response.json()["detail"] and "\n" not in response.json()["detail"]
    assert _serving(client) == "v2"


def test_a_server_started_over_a_malformed_pointer_is_live_not_ready_and_recovers(home: Settings) -> None:
    _pointer(home).write_bytes(b"[]")
    port = free_port()
    log = home.home / "server.log"
    env = {"STREAMREC_HOME": str(home.home), "STREAMREC_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamrec", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        health = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"{url}/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert server.poll() is None, log.read_text()[-3000:]
        assert health is not None and health.status_code == 503
        assert "ACTIVE.json" in health.json()["detail"]
        assert httpx.get(f"{url}/v1/recommendations", params={"user_id": 1}).status_code == 503

        assert cli(home.home, "versions").returncode == 0  # rewrites the pointer from ops.promotions
        assert httpx.post(f"{url}/v1/admin/reload", headers=AUTH, timeout=60).status_code == 200
        health = httpx.get(f"{url}/v1/health", timeout=2)
        assert health.status_code == 200 and health.json()["model_version"] == "v2"
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text()


# --- case 6 ------------------------------------------------------------------------------------------------


def test_a_hand_edited_pointer_cannot_override_the_registry(client: TestClient, home: Settings) -> None:
    pointer = json.loads(_pointer(home).read_text())
    older = json.loads((home.home.parent / "ACTIVE.v1.json").read_text())
    edits = [
        {**pointer, "version": "v1", "bundle_path": "v1"},  # another version, v2's seal
        {**pointer, "version": "v1", "bundle_path": "v1", "manifest_sha256": older["manifest_sha256"]},
        {k: v for k, v in older.items() if k != "seal"},  # v1 without a seal
        {**older, "promoted_at": pointer["promoted_at"] + "1"},  # v1 made to look newer
    ]
    for edit in edits:
        _pointer(home).write_text(json.dumps(edit))
        response = client.post("/v1/admin/reload", headers=AUTH)
        assert response.status_code == 409, (edit, response.text)
        assert _serving(client) == "v2"
    # The operator's old backup is a genuine, sealed v1 pointer, but older than what serves: refused too.
    shutil.copy(home.home.parent / "ACTIVE.v1.json", _pointer(home))
    response = client.post("/v1/admin/reload", headers=AUTH)
    assert response.status_code == 409 and "ops.promotions is the record" in response.json()["detail"]
    assert _serving(client) == "v2"

    done = cli(home.home, "versions")  # the registry rewrites its projection
    assert_no_traceback(done)
    assert json.loads(_pointer(home).read_text()) == pointer
    history = cli(home.home, "sql", "select version from ops.promotions order by promoted_at desc limit 1")
    assert "v2" in history.stdout


def test_rollback_through_the_registry_is_served(client: TestClient, home: Settings) -> None:
    done = cli(home.home, "rollback", "--reason", "faults")
    assert done.returncode == 0, done.stderr
    assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
    assert _serving(client) == "v1"


# --- case 7 ------------------------------------------------------------------------------------------------


def _rogue(home: Settings, source: str = "v1", name: str = "rogue") -> None:
    rogue = home.artifacts_dir / name
    shutil.copytree(home.artifacts_dir / source, rogue)
    manifest = msgspec.json.decode((rogue / "manifest.json").read_bytes())
    manifest["version"] = name
    (rogue / "manifest.json").write_bytes(msgspec.json.encode(manifest))


def test_a_canary_of_an_unregistered_bundle_is_refused(client: TestClient, home: Settings) -> None:
    _rogue(home)
    start = {"action": "start", "candidate_version": "rogue", "share": 1.0}
    response = client.post("/v1/admin/canary", json=start, headers=AUTH)
    assert response.status_code == 409, response.text
    assert "rogue is not a registered bundle" in response.json()["detail"]
    assert client.get("/v1/admin/canary", headers=AUTH).json()["state"] == "idle"
    assert client.get("/v1/recommendations", params={"user_id": 3}).json()["model_version"] == "v2"


def test_a_canary_of_a_registered_but_swapped_bundle_is_refused(client: TestClient, home: Settings) -> None:
    # v1's directory replaced by another bundle that calls itself v1: the registered manifest hash differs.
    shutil.rmtree(home.artifacts_dir / "v1")
    _rogue(home, source="v2", name="v1")
    response = client.post("/v1/admin/canary", json={"action": "start", "candidate_version": "v1"}, headers=AUTH)
    assert response.status_code == 409, response.text
    assert client.get("/v1/admin/canary", headers=AUTH).json()["state"] == "idle"


def test_a_canary_of_a_registered_bundle_runs(client: TestClient, home: Settings) -> None:
    response = client.post("/v1/admin/canary", json={"action": "start", "candidate_version": "v1"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "running"
