"""The API in process (litestar TestClient) over real synthetic bundles on disk and the real event log."""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient, TestClient

from streamrec.api.app import create_app
from streamrec.api.config import ApiSettings
from streamrec.api.services.assignment import in_holdout
from streamrec.core.eventlog import read_stream
from streamrec.core.settings import Settings
from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
V1_ITEMS = range(1, 401)
V2_ITEMS = range(10_001, 10_301)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small synthetic bundles with disjoint item ids (v1: 1..400, v2: 10001..10300)."""
    root = tmp_path_factory.mktemp("api_artifacts")
    write_synthetic_bundle(root, "v1", n_users=120, n_items=400, seed=1)
    write_synthetic_bundle(root, "v2", n_users=120, n_items=300, seed=2, first_item_id=10_001)
    return root


def make_home(tmp_path: Path, artifacts: Path, active: str | None = "v1") -> Settings:
    home = Settings(home=tmp_path / "home")
    shutil.copytree(artifacts, home.artifacts_dir)
    home.ensure()
    if active:
        write_active_pointer(home.artifacts_dir, active)
    return home


def api_settings(home: Settings, **overrides: object) -> ApiSettings:
    env = {"STREAMREC_HOME": str(home.home), "STREAMREC_ADMIN_TOKEN": TOKEN, "STREAMREC_SEED": "5"}
    return ApiSettings.from_env(env, **overrides)


@pytest.fixture
def home(tmp_path: Path, artifacts: Path) -> Settings:
    return make_home(tmp_path, artifacts)


@pytest.fixture
def client(home: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings(home))) as test_client:
        yield test_client


def personalised_user(share: float = 0.05, salt: str = "holdout-v1") -> int:
    return next(u for u in range(1, 121) if not in_holdout(u, share, salt))


def test_recommendations_are_logged_before_the_response(client: TestClient, home: Settings) -> None:
    user = personalised_user()
    response = client.get("/v1/recommendations", params={"user_id": user, "k": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "personalized" and body["cold_start"] is False
    assert body["model_version"] == "v1" and body["canary_phase"] == "none"
    items = body["items"]
    assert [i["position"] for i in items] == list(range(1, 11))
    assert len({i["item_id"] for i in items}) == 10 and all(i["item_id"] in V1_ITEMS for i in items)
    assert all(0 < i["propensity"] <= 1 for i in items)
    logged = [r for r in read_stream(home.logs_dir, "impressions") if r["request_id"] == body["request_id"]]
    assert sorted((r["position"], r["item_id"]) for r in logged) == [(i["position"], i["item_id"]) for i in items]
    assert {r["user_id"] for r in logged} == {user} and {r["policy"] for r in logged} == {"personalized"}
    assert all(r["latency_ms"] > 0 and r["model_version"] == "v1" for r in logged)


@pytest.mark.parametrize("mode", ["always", "interval"])
def test_every_fsync_mode_logs_each_page_before_its_response(home: Settings, mode: str) -> None:
    with TestClient(create_app(api_settings(home, log_fsync=mode, log_fsync_interval_ms=5))) as test_client:
        bodies = [test_client.get("/v1/recommendations", params={"user_id": u, "k": 5}).json() for u in (1, 2, 3)]
        # Read while the server still runs: nothing may depend on a flush at shutdown.
        logged = {(r["request_id"], r["item_id"]) for r in read_stream(home.logs_dir, "impressions")}
    assert logged == {(b["request_id"], i["item_id"]) for b in bodies for i in b["items"]}


def test_a_bad_log_fsync_setting_is_named(home: Settings) -> None:
    from streamrec.core.errors import StreamRecError

    with pytest.raises(StreamRecError, match="STREAMREC_LOG_FSYNC='sometimes'"):
        ApiSettings.from_env({"STREAMREC_HOME": str(home.home), "STREAMREC_LOG_FSYNC": "sometimes"})
    with pytest.raises(StreamRecError, match="STREAMREC_LOG_FSYNC_INTERVAL_MS='0' is out of range"):
        ApiSettings.from_env({"STREAMREC_HOME": str(home.home), "STREAMREC_LOG_FSYNC_INTERVAL_MS": "0"})


def test_cold_start_and_holdout_policies(client: TestClient) -> None:
    cold = client.get("/v1/recommendations", params={"user_id": 999_999, "k": 5}).json()
    assert cold["cold_start"] is True and cold["policy"] == "cold_start"
    assert all(i["propensity"] == 1.0 for i in cold["items"])
    by_language = client.get("/v1/recommendations", params={"user_id": 999_999, "k": 5, "language": "en"})
    assert by_language.status_code == 200 and by_language.json()["items"] != cold["items"]
    held_out = next(u for u in range(1, 121) if in_holdout(u, 0.05, "holdout-v1"))
    holdout = client.get("/v1/recommendations", params={"user_id": held_out, "k": 5}).json()
    assert holdout["policy"] == "holdout" and holdout["cold_start"] is False
    # Holdout is the non-personalised popularity list: every holdout user gets the same page.
    assert [i["item_id"] for i in holdout["items"]] == [i["item_id"] for i in cold["items"]]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": 1, "k": 0}, "k"),
        ({"user_id": 1, "k": 501}, "k"),
        ({"user_id": 1, "k": "ten"}, "k"),
        ({"user_id": -4}, "user_id"),
        ({"user_id": 1, "color": "red"}, "color"),
        ({"user_id": 1, "language": "xx"}, "language"),
    ],
)
def test_bad_queries_are_400_with_a_reason(client: TestClient, params: dict, needle: str) -> None:
    response = client.get("/v1/recommendations", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert needle in (body["detail"] + str(body.get("extra", "")))


def served(client: TestClient, user: int | None = None) -> dict:
    return client.get("/v1/recommendations", params={"user_id": user or personalised_user(), "k": 5}).json()


def test_events_are_stored_with_the_served_user(client: TestClient, home: Settings) -> None:
    page = served(client)
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)  # an outcome after the page was served
    ts = at.isoformat()
    events = [
        {
            "request_id": page["request_id"],
            "item_id": page["items"][0]["item_id"],
            "event_type": "click",
            "event_ts": ts,
        },
        {
            "request_id": page["request_id"],
            "item_id": page["items"][1]["item_id"],
            "event_type": "complete",
            "watch_seconds": 310.5,
            "event_ts": ts,
        },
    ]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    ids = response.json()["event_ids"]
    stored = {r["event_id"]: r for r in read_stream(home.logs_dir, "events")}
    assert set(ids) <= set(stored)
    record = stored[ids[1]]
    assert record["user_id"] == personalised_user() and record["watch_seconds"] == 310.5
    assert record["event_ts"].startswith(at.replace(tzinfo=None).isoformat())
    # A retried batch gets the same event ids (ingest deduplicates on them).
    assert client.post("/v1/events", json={"events": events}).json()["event_ids"] == ids


def test_unknown_ids_reject_the_whole_batch(client: TestClient, home: Settings) -> None:
    page = served(client)
    good = {"request_id": page["request_id"], "item_id": page["items"][0]["item_id"], "event_type": "play"}
    good["event_ts"] = datetime.now(UTC).replace(tzinfo=None).isoformat()
    bad_item = dict(good, item_id=987_654)
    response = client.post("/v1/events", json={"events": [good, bad_item]})
    assert response.status_code == 422 and "987654" in response.json()["detail"]
    bad_request = dict(good, request_id="nope")
    response = client.post("/v1/events", json={"events": [bad_request]})
    assert response.status_code == 422 and "nope" in response.json()["detail"]
    assert list(read_stream(home.logs_dir, "events")) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"events": []}', 400),
        (
            b'{"events": [{"request_id": "a", "item_id": 1, "event_type": "stare", "event_ts": "2026-01-01"}]}',
            400,
        ),
        (b'{"events": [{"request_id": "a", "item_id": 1, "event_type": "play"}]}', 400),
        (b'{"events": [{"request_id": "a", "item_id": 1, "event_type": "play", "event_ts": "x"}]}', 400),
        (
            b'{"events": [{"request_id": "a", "item_id": 1, "event_type": "play", "event_ts": "2026-01-01", "x": 1}]}',
            400,
        ),
    ],
)
def test_malformed_event_bodies_are_400(client: TestClient, body: bytes, status: int) -> None:
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_too_many_or_too_large_event_batches(client: TestClient) -> None:
    event = {"request_id": "r", "item_id": 1, "event_type": "play", "event_ts": "2026-01-01T00:00:00"}
    response = client.post("/v1/events", json={"events": [event] * 1001})
    assert response.status_code == 400 and "1000" in response.text
    huge = msgspec.json.encode({"events": [dict(event, request_id="r" * 64)] * 9000})
    assert len(huge) > 1024 * 1024
    response = client.post("/v1/events", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_admin_requires_the_token(home: Settings) -> None:
    with TestClient(create_app(api_settings(home))) as client:
        assert client.post("/v1/admin/reload").status_code == 401
        assert client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/v1/admin/reload", headers=AUTH).json()["changed"] is False
    with TestClient(create_app(api_settings(home, admin_token=None))) as client:
        response = client.post("/v1/admin/reload", headers=AUTH)
        assert response.status_code == 401 and "disabled" in response.json()["detail"]


def test_not_ready_until_a_bundle_is_promoted(tmp_path: Path, artifacts: Path) -> None:
    home = make_home(tmp_path, artifacts, active=None)
    with TestClient(create_app(api_settings(home))) as client:
        health = client.get("/v1/health")
        assert health.status_code == 503 and health.json()["ready"] is False
        assert client.get("/v1/recommendations", params={"user_id": 1}).status_code == 503
        assert client.get("/v1/versions/active").status_code == 503
        write_active_pointer(home.artifacts_dir, "v2")
        assert client.post("/v1/admin/reload", headers=AUTH).json() == {
            "version": "v2",
            "previous_version": None,
            "changed": True,
        }
        assert client.get("/v1/health").json()["model_version"] == "v2"
        assert client.get("/v1/versions/active").json()["version"] == "v2"


def test_a_broken_bundle_never_replaces_the_serving_one(home: Settings) -> None:
    # v3 = v2 with v1's index: same file names, wrong parts. Verification must refuse it.
    broken = home.artifacts_dir / "v3"
    shutil.copytree(home.artifacts_dir / "v2", broken)
    manifest = msgspec.json.decode((broken / "manifest.json").read_bytes())
    manifest["version"] = "v3"
    (broken / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    shutil.copy(home.artifacts_dir / "v1" / "item_index.faiss", broken / "item_index.faiss")
    with TestClient(create_app(api_settings(home))) as client:
        write_active_pointer(home.artifacts_dir, "v3")  # a correctly sealed pointer: the bundle itself is wrong
        response = client.post("/v1/admin/reload", headers=AUTH)
        assert response.status_code == 409 and "item_index.faiss" in response.json()["detail"]
        assert client.get("/v1/recommendations", params={"user_id": 3}).json()["model_version"] == "v1"


def test_two_phase_canary(client: TestClient, home: Settings) -> None:
    start = {"action": "start", "candidate_version": "v2", "phase": 1, "share": 1.0}
    status = client.post("/v1/admin/canary", json=start, headers=AUTH).json()
    assert (status["state"], status["phase"], status["candidate_version"]) == ("running", 1, "v2")
    page = client.get("/v1/recommendations", params={"user_id": 7}).json()
    assert page["model_version"] == "v2" and page["canary_phase"] == "phase1"
    assert all(i["item_id"] in V2_ITEMS for i in page["items"])

    client.post("/v1/admin/canary", json={"action": "hold"}, headers=AUTH)
    page = client.get("/v1/recommendations", params={"user_id": 7}).json()
    assert page["model_version"] == "v1" and page["canary_phase"] == "none"

    status = client.post("/v1/admin/canary", json={"action": "advance"}, headers=AUTH).json()
    assert (status["state"], status["phase"], status["share"]) == ("running", 2, 0.25)
    response = client.post("/v1/admin/canary", json={"action": "advance"}, headers=AUTH)
    assert response.status_code == 409 and "promote" in response.json()["detail"]

    write_active_pointer(home.artifacts_dir, "v2")
    status = client.post("/v1/admin/canary", json={"action": "advance"}, headers=AUTH).json()
    assert status["state"] == "idle" and status["control_version"] == "v2"
    assert client.get("/v1/recommendations", params={"user_id": 7}).json()["model_version"] == "v2"
    assert client.post("/v1/admin/canary", json={"action": "rollback"}, headers=AUTH).status_code == 409


def test_a_restarted_server_resumes_its_canary(home: Settings) -> None:
    start = {"action": "start", "candidate_version": "v2", "phase": 1, "share": 1.0}
    with TestClient(create_app(api_settings(home))) as client:
        assert client.post("/v1/admin/canary", json=start, headers=AUTH).status_code == 200
    with TestClient(create_app(api_settings(home))) as client:  # a restart
        status = client.get("/v1/admin/canary", headers=AUTH).json()
        assert (status["state"], status["phase"], status["candidate_version"]) == ("running", 1, "v2")
        assert client.get("/v1/recommendations", params={"user_id": 7}).json()["model_version"] == "v2"
        assert client.post("/v1/admin/canary", json={"action": "rollback"}, headers=AUTH).status_code == 200
    with TestClient(create_app(api_settings(home))) as client:
        assert client.get("/v1/admin/canary", headers=AUTH).json()["state"] == "idle"
        assert client.get("/v1/recommendations", params={"user_id": 7}).json()["model_version"] == "v1"


def test_a_broken_canary_file_leaves_the_control_serving(home: Settings) -> None:
    (home.artifacts_dir / "CANARY.json").write_text("{not json")
    with TestClient(create_app(api_settings(home))) as client:
        assert client.get("/v1/health").status_code == 200
        assert client.get("/v1/admin/canary", headers=AUTH).json()["state"] == "idle"
        assert client.get("/v1/recommendations", params={"user_id": 7}).json()["model_version"] == "v1"


def test_canary_rollback_and_bad_commands(client: TestClient) -> None:
    assert client.post("/v1/admin/canary", json={"action": "start"}, headers=AUTH).status_code == 409
    assert client.post("/v1/admin/canary", json={"action": "jump"}, headers=AUTH).status_code == 400
    missing = {"action": "start", "candidate_version": "v9"}
    response = client.post("/v1/admin/canary", json=missing, headers=AUTH)
    assert response.status_code == 409 and "v9" in response.json()["detail"]
    client.post("/v1/admin/canary", json={"action": "start", "candidate_version": "v2"}, headers=AUTH)
    assert client.get("/v1/admin/canary", headers=AUTH).json()["share"] == 0.10
    assert client.post("/v1/admin/canary", json={"action": "rollback"}, headers=AUTH).json()["state"] == "idle"
    assert client.get("/v1/health").json()["candidate_version"] is None


def test_metrics_exposition(client: TestClient) -> None:
    for _ in range(3):
        client.get("/v1/recommendations", params={"user_id": 2, "k": 4})
    client.get("/v1/recommendations", params={"user_id": "x"})
    text = client.get("/metrics").text
    assert 'streamrec_http_requests_total{endpoint="/v1/recommendations",method="GET",status="200"} 3' in text
    assert 'streamrec_http_requests_total{endpoint="/v1/recommendations",method="GET",status="400"} 1' in text
    assert "streamrec_impressions_logged_total{policy=" in text
    assert 'streamrec_http_request_duration_seconds_bucket{endpoint="/v1/recommendations",le="+Inf"} 4' in text
    assert "# TYPE streamrec_http_request_duration_seconds histogram" in text
    assert 'streamrec_log_fsyncs_total{stream="impressions"}' in text


def test_metrics_count_the_background_fsyncs(home: Settings) -> None:
    with TestClient(create_app(api_settings(home, log_fsync="interval", log_fsync_interval_ms=5))) as client:
        client.get("/v1/recommendations", params={"user_id": 2, "k": 4})
        for _ in range(200):  # the sync thread runs every 5 ms; give it up to ~2 s
            text = client.get("/metrics").text
            if 'streamrec_log_fsyncs_total{stream="impressions"} 0' not in text:
                break
            time.sleep(0.01)
    assert 'streamrec_log_fsyncs_total{stream="impressions"} 0' not in text
    assert 'streamrec_log_fsyncs_total{stream="events"} 0' in text  # nothing written, nothing synced


def test_restart_restores_requests_and_exposure(home: Settings) -> None:
    with TestClient(create_app(api_settings(home))) as client:
        page = served(client)
    app = create_app(api_settings(home))
    with TestClient(app) as client:
        # position-weighted personalised exposure of the one page of 5, restored from the log
        exposure = app.state.services.tracker.exposure(page["model_version"])
        assert exposure.sum() == pytest.approx(sum(1 / math.log2(1 + p) for p in range(1, 6)))
        event = {"request_id": page["request_id"], "item_id": page["items"][0]["item_id"], "event_type": "like"}
        event["event_ts"] = datetime.now(UTC).isoformat()
        assert client.post("/v1/events", json={"events": [event]}).status_code == 200


@pytest.mark.anyio
async def test_reloads_under_load_never_mix_versions(home: Settings) -> None:
    app = create_app(api_settings(home))
    async with AsyncTestClient(app) as client:

        async def flip() -> None:
            for version in ["v2", "v1", "v2", "v1"]:
                write_active_pointer(home.artifacts_dir, version)
                response = await client.post("/v1/admin/reload", headers=AUTH)
                assert response.status_code == 200

        async def ask(user: int) -> dict:
            response = await client.get("/v1/recommendations", params={"user_id": user, "k": 10})
            assert response.status_code == 200
            return response.json()

        results = await asyncio.gather(flip(), *(ask(u % 120 + 1) for u in range(120)))
    pages = results[1:]
    catalogue = {"v1": V1_ITEMS, "v2": V2_ITEMS}
    for page in pages:
        assert all(i["item_id"] in catalogue[page["model_version"]] for i in page["items"]), page["model_version"]
    assert {p["model_version"] for p in pages} <= {"v1", "v2"}
