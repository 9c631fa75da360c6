"""The faults that already held, kept in the suite so they keep holding (issue 11, "Fault suite").

- kill -9 of the server under load: every impression of every 200 is in the log exactly once;
- kill -9 of `streamrec build` (and its dbt child) mid-run: the published warehouse is untouched and the
  next build works;
- kill -9 of `streamrec promote` at several points: `streamrec versions` makes ACTIVE.json agree with
  ops.promotions, and the warehouse is never half-written;
- tampered, truncated and swapped bundles: reload and canary answer 409 and the old bundle keeps serving;
- build, ingest, sql and serving at the same time: every command succeeds, no traceback.
(Unregistered bundles: test_serving_pointer.py; ingest killed at 15 points: tests/integration/test_ingest.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from streamrec.api.app import create_app
from streamrec.api.config import ApiSettings
from streamrec.core.eventlog import DurableLog, ImpressionRecord, read_stream
from streamrec.core.settings import Settings
from streamrec.lab.server_process import ApiProcess
from streamrec.lab.synthetic_bundle import write_active_pointer
from tests.faults.conftest import CLI, assert_no_traceback, cli, fingerprint

pytestmark = pytest.mark.slow
TOKEN = "faults-kill-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def home(registered_home: Path, tmp_path: Path) -> Settings:
    target = tmp_path / "home"
    shutil.copytree(registered_home, target)
    return Settings(home=target)


# --- kill -9 of the server under load ----------------------------------------------------------------------


def _drive(url: str, worker: int, stop: threading.Event, ok: list[dict]) -> None:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        n = 0
        while not stop.is_set() and n < 2_000:  # bounded even if the kill never comes
            n += 1
            try:
                response = client.get("/v1/recommendations", params={"user_id": (worker * 97 + n) % 80, "k": 5})
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 200:
                ok.append(response.json())
            else:
                assert response.status_code < 500, response.text


def test_server_killed_under_load_keeps_every_acknowledged_impression(home: Settings) -> None:
    api = ApiProcess(home.home, env={"STREAMREC_ADMIN_TOKEN": TOKEN}).start()
    stop = threading.Event()
    ok: list[dict] = []
    threads = [threading.Thread(target=_drive, args=(api.url, w, stop, ok)) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(ok) < 150 and time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    api.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ok) >= 150
    logged = Counter((r["request_id"], r["position"]) for r in read_stream(home.logs_dir, "impressions"))
    acknowledged = [(page["request_id"], item["position"]) for page in ok for item in page["items"]]
    assert all(logged[key] == 1 for key in acknowledged)  # every 200's slots, exactly once

    restarted = ApiProcess(home.home, env={"STREAMREC_ADMIN_TOKEN": TOKEN}).start()
    try:
        assert httpx.get(f"{restarted.url}/v1/health").status_code == 200
    finally:
        restarted.stop()
    assert "Traceback" not in api.log.read_text(errors="replace")
    done = cli(home.home, "ingest")
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr


# --- kill -9 of build and promote --------------------------------------------------------------------------


def test_build_killed_mid_run_leaves_the_published_warehouse(copy_home, built_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    before = fingerprint(settings.warehouse_path)
    inode = settings.warehouse_path.stat().st_ino
    env = {**os.environ, "STREAMREC_HOME": str(settings.home)}
    build = subprocess.Popen(
        [*CLI, "build"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    building = settings.home / "warehouse.building.duckdb"
    deadline = time.monotonic() + 120
    while not building.exists() and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # dbt is writing models into the copy
    os.killpg(build.pid, signal.SIGKILL)  # the CLI and its dbt child, no cleanup
    build.wait(timeout=30)
    assert settings.warehouse_path.stat().st_ino == inode
    assert fingerprint(settings.warehouse_path) == before
    done = cli(settings.home, "build", "--select", "stg_raw__creators")  # lock released, leftover copy replaced
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not building.exists()


def _serving_in_warehouse(home: Settings) -> str:
    done = cli(home.home, "sql", "select version from ops.promotions order by promoted_at desc limit 1")
    assert done.returncode == 0, done.stderr
    return "v1" if "v1" in done.stdout else "v2"


def test_promote_killed_at_several_points_heals_on_versions(home: Settings) -> None:
    env = {**os.environ, "STREAMREC_HOME": str(home.home)}
    for attempt, delay in enumerate((0.5, 1.0, 1.5, 2.0, 3.0)):
        target = "v1" if attempt % 2 == 0 else "v2"
        promote = subprocess.Popen(
            [*CLI, "promote", target, "--reason", f"kill {delay}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        promote.kill()
        promote.wait(timeout=30)
        done = cli(home.home, "versions")
        assert_no_traceback(done)
        assert done.returncode == 0, done.stderr
        pointer = json.loads((home.artifacts_dir / "ACTIVE.json").read_text())
        assert pointer["version"] == _serving_in_warehouse(home)


# --- tampered, truncated, swapped bundles -----------------------------------------------------------------


@pytest.fixture
def client(home: Settings) -> Iterator[TestClient]:
    env = {"STREAMREC_HOME": str(home.home), "STREAMREC_ADMIN_TOKEN": TOKEN, "STREAMREC_SEED": "2"}
    with TestClient(create_app(ApiSettings.from_env(env))) as test_client:
        yield test_client


def _tamper(bundle: Path) -> None:
    path = bundle / "item_index.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(bundle: Path) -> None:
    path = bundle / "retrieval.pt"
    os.truncate(path, path.stat().st_size // 2)


def _swap(bundle: Path) -> None:
    other = bundle.parent / "v2"
    shutil.rmtree(bundle / "online_features")
    shutil.copytree(other / "online_features", bundle / "online_features")


@pytest.mark.parametrize("damage", [_tamper, _truncate, _swap], ids=["tampered", "truncated", "swapped"])
def test_a_damaged_bundle_is_refused_by_reload_and_canary(client: TestClient, home: Settings, damage) -> None:
    damage(home.artifacts_dir / "v1")
    response = client.post("/v1/admin/canary", json={"action": "start", "candidate_version": "v1"}, headers=AUTH)
    assert response.status_code == 409, response.text
    write_active_pointer(home.artifacts_dir, "v1")  # a correctly sealed pointer to the damaged bundle
    response = client.post("/v1/admin/reload", headers=AUTH)
    assert response.status_code == 409, response.text
    assert "\n" not in response.json()["detail"]
    assert client.get("/v1/recommendations", params={"user_id": 3}).json()["model_version"] == "v2"
    done = cli(home.home, "promote", "v1", "--reason", "damaged")
    assert_no_traceback(done)
    assert done.returncode == 1 and "refusing to serve v1" in done.stderr


# --- build, ingest, sql and serving at once ----------------------------------------------------------------


def test_build_ingest_sql_and_serving_at_once(copy_home, built_home: Path, registered_home: Path) -> None:
    settings: Settings = copy_home(built_home)
    shutil.rmtree(settings.artifacts_dir)
    shutil.copytree(Path(registered_home) / "artifacts", settings.artifacts_dir)
    log = DurableLog(settings.logs_dir, "impressions")
    now = datetime.now(UTC)
    record = {"served_at": now, "user_id": 1, "item_id": 1, "policy": "model", "model_version": "v2"}
    log.append([ImpressionRecord(request_id="c1", position=1, **record)])
    log.close()
    api = ApiProcess(settings.home, env={"STREAMREC_ADMIN_TOKEN": TOKEN}).start()
    env = {**os.environ, "STREAMREC_HOME": str(settings.home)}
    try:
        build = subprocess.Popen(
            [*CLI, "build", "--select", "staging"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        queries = [cli(settings.home, "sql", "select count(*) from raw.users") for _ in range(3)]
        ingest = cli(settings.home, "ingest")
        pages = [httpx.get(f"{api.url}/v1/recommendations", params={"user_id": u}).status_code for u in range(10)]
        _, stderr = build.communicate(timeout=600)
    finally:
        api.stop()
    for done in [*queries, ingest]:
        assert_no_traceback(done)
        assert done.returncode == 0, done.stderr
    assert "Traceback" not in stderr and build.returncode == 0, stderr[-2000:]
    assert set(pages) == {200}
    assert "impressions: 1 new" in ingest.stdout
