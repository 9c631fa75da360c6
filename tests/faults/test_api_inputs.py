"""Issue 11 cases 3, 4, 9 and 11: hostile or sloppy requests get a 4xx naming the problem, never a 500.

The app runs in process (litestar TestClient) over a real synthetic bundle and the real event log;
after each refused batch the event log must still be empty (nothing half-stored).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient

from streamrec.api.app import create_app
from streamrec.api.config import ApiSettings
from streamrec.core.eventlog import read_stream
from streamrec.core.settings import Settings
from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle

TOKEN = "faults-admin-token"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults_api") / "artifacts"
    write_synthetic_bundle(root, "v1", n_users=80, n_items=200, seed=3)
    return root


@pytest.fixture
def home(tmp_path: Path, artifacts: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    shutil.copytree(artifacts, settings.artifacts_dir)
    settings.ensure()
    write_active_pointer(settings.artifacts_dir, "v1")
    return settings


@pytest.fixture
def client(home: Settings) -> Iterator[TestClient]:
    env = {"STREAMREC_HOME": str(home.home), "STREAMREC_ADMIN_TOKEN": TOKEN, "STREAMREC_SEED": "3"}
    with TestClient(create_app(ApiSettings.from_env(env))) as test_client:
        yield test_client


def _page(client: TestClient) -> dict:
    response = client.get("/v1/recommendations", params={"user_id": 7, "k": 5})
    assert response.status_code == 200, response.text
    return response.json()


def _event(page: dict, **overrides: object) -> dict:
    event = {
        "request_id": page["request_id"],
        "item_id": page["items"][0]["item_id"],
        "event_type": "play",
        "event_ts": datetime.now(UTC).isoformat(),
    }
    return {**event, **overrides}


def _refused(response, status: int, *needles: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert "\n" not in detail
    for needle in needles:
        assert needle in detail, (needle, detail)
    return detail


# --- case 3: extreme event times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_ts", "needle"),
    [
        ("0001-01-01T00:00:00+01:00", "outside the representable range"),
        ("9999-12-31T23:59:59-01:00", "outside the representable range"),
        ("0001-01-01T00:00:00", "before its request was served"),
        ("2001-01-01T00:00:00Z", "before its request was served"),
        ("9999-12-31T23:59:59", "more than a day in the future"),
    ],
)
def test_event_times_outside_the_window_are_422(client: TestClient, home: Settings, event_ts: str, needle: str) -> None:
    page = _page(client)
    response = client.post("/v1/events", json={"events": [_event(page), _event(page, event_ts=event_ts)]})
    _refused(response, 422, "events[1].event_ts", needle)
    assert list(read_stream(home.logs_dir, "events")) == []


def test_event_times_inside_the_window_are_stored(client: TestClient) -> None:
    page = _page(client)
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    response = client.post("/v1/events", json={"events": [_event(page), _event(page, event_ts=soon)]})
    assert response.status_code == 200, response.text


# --- case 4: deeply nested JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"unknown": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"}",
        b"[" * 100_000,  # not even closed
    ],
)
def test_deeply_nested_bodies_are_400(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    _refused(response, 400, "nested", "limit is 32")


def test_brackets_inside_strings_do_not_count_as_nesting(client: TestClient) -> None:
    page = _page(client)
    body = json.dumps({"events": [_event(page)], "x": "[" * 100})
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    detail = _refused(response, 400)  # judged as an unknown field, not as nesting
    assert "nested" not in detail and "unknown field `x`" in response.text


# --- case 9: an item that was not on the request's page ----------------------------------------------------


def test_event_for_an_item_not_on_the_page_is_422(client: TestClient, home: Settings) -> None:
    page = _page(client)
    shown = {item["item_id"] for item in page["items"]}
    other = next(i for i in range(1, 201) if i not in shown)
    response = client.post("/v1/events", json={"events": [_event(page), _event(page, item_id=other)]})
    _refused(response, 422, f"item_id {other}", "was not on the page", page["request_id"])
    assert list(read_stream(home.logs_dir, "events")) == []


# --- case 11: lax inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("user_id=1e3", "plain digits"),
        ("user_id=1.0", "plain digits"),
        ("user_id=7&k=5e0", "plain digits"),
        ("user_id=%C2%B2", "user_id"),
        ("user_id=1&user_id=2", "given 2 times"),
        ("user_id=1&k=5&k=6", "given 2 times"),
    ],
)
def test_lax_query_parameters_are_400(client: TestClient, query: str, needle: str) -> None:
    _refused(client.get(f"/v1/recommendations?{query}"), 400, needle)


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_bodies_that_are_not_declared_json_are_415(client: TestClient, content_type: str | None) -> None:
    page = _page(client)
    headers = {"content-type": content_type} if content_type else {}
    request = client.build_request("POST", "/v1/events", content=json.dumps({"events": [_event(page)]}))
    if content_type is None:
        request.headers.pop("content-type", None)
    request.headers.update(headers)
    _refused(client.send(request), 415, "application/json")


def test_duplicate_keys_and_nan_are_400(client: TestClient) -> None:
    page = _page(client)
    event = _event(page)
    fields = f'"request_id": "{event["request_id"]}", "item_id": {event["item_id"]}, "item_id": 1'
    dup = f'{{"events": [{{{fields}, "event_type": "play", "event_ts": "{event["event_ts"]}"}}]}}'
    _refused(
        client.post("/v1/events", content=dup, headers={"content-type": "application/json"}), 400, "'item_id' twice"
    )
    nan = dup.replace('"item_id": 1, ', "").replace('"event_type"', '"watch_seconds": NaN, "event_type"')
    _refused(client.post("/v1/events", content=nan, headers={"content-type": "application/json"}), 400, "NaN")


def test_openapi_says_unknown_fields_are_refused(client: TestClient) -> None:
    schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]
    for name in ("FeedbackEvent", "EventBatch", "CanaryCommand"):
        assert schemas[name]["additionalProperties"] is False, (name, schemas[name])
    assert "additionalProperties" not in schemas["Recommendations"]  # responses may grow fields


def test_options_on_admin_lists_its_methods(client: TestClient) -> None:
    response = client.options("/v1/admin/canary")
    assert response.status_code == 204, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST", "OPTIONS"}


@pytest.mark.parametrize(
    "header",
    [f"bearer  {TOKEN}", f"Bearer {TOKEN} ", f"Bearer\t{TOKEN}", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"],
)
def test_padded_or_wrong_authorization_is_401(client: TestClient, header: str) -> None:
    _refused(client.get("/v1/admin/canary", headers={"Authorization": header}), 401)


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}"])
def test_the_exact_bearer_token_is_accepted(client: TestClient, header: str) -> None:
    assert client.get("/v1/admin/canary", headers={"Authorization": header}).status_code == 200


# --- out of scope but answered: a full disk -----------------------------------------------------------------


def test_a_full_disk_is_503_and_nothing_is_acknowledged(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC injected at the log's write(2): the request is refused with 503, never a 200 and never a 500."""
    import errno
    import os as real_os

    import streamrec.core.eventlog as eventlog

    page = _page(client)

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, real_os.strerror(errno.ENOSPC))

    monkeypatch.setattr(eventlog.os, "write", full)
    refused = client.get("/v1/recommendations", params={"user_id": 7, "k": 5})
    _refused(refused, 503, "No space left on device", "nothing was stored")
    _refused(client.post("/v1/events", json={"events": [_event(page)]}), 503, "No space left on device")
    monkeypatch.undo()
    assert client.get("/v1/recommendations", params={"user_id": 7, "k": 5}).status_code == 200  # space is back
