"""`GET /metrics` (prometheus_client) and the OpenAPI document, in process over real synthetic bundles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from streamrec.api.app import create_app
from streamrec.api.services.metrics import HTTP_BUCKETS
from streamrec.core.settings import Settings
from tests.unit.test_api_app import AUTH, api_settings, make_home

V1_ITEMS = 400


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from streamrec.lab.synthetic_bundle import write_synthetic_bundle

    root = tmp_path_factory.mktemp("metrics_artifacts")
    write_synthetic_bundle(root, "v1", n_users=60, n_items=V1_ITEMS, seed=1)
    write_synthetic_bundle(root, "v2", n_users=60, n_items=200, seed=2, first_item_id=10_001)
    return root


@pytest.fixture
def home(tmp_path: Path, artifacts: Path) -> Settings:
    return make_home(tmp_path, artifacts)


@pytest.fixture
def client(home: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings(home))) as test_client:
        yield test_client


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_parse_with_one_content_type_and_process_metrics(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/v1/recommendations", params={"user_id": 2, "k": 4}).status_code == 200
    response = client.get("/metrics")
    assert response.headers.get_list("content-type") == ["text/plain; version=0.0.4; charset=utf-8"]
    parsed = families(response.text)  # the official parser reads every line
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert name in parsed, name
    requests = parsed["streamrec_http_requests"]
    ok = [
        s for s in requests.samples if s.labels == {"endpoint": "/v1/recommendations", "method": "GET", "status": "200"}
    ]
    assert ok and ok[0].value == 3
    impressions = sum(s.value for s in parsed["streamrec_impressions_logged"].samples)
    assert impressions == 12  # 3 pages of 4
    latency = parsed["streamrec_http_request_duration_seconds"]
    bounds = sorted(
        {float(s.labels["le"]) for s in latency.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
    )
    assert bounds == list(HTTP_BUCKETS)
    assert not any(s.name.endswith("_created") for f in parsed.values() for s in f.samples)


def test_serving_info_names_version_snapshot_and_canary(client: TestClient) -> None:
    info = families(client.get("/metrics").text)["streamrec_serving_info"].samples
    assert len(info) == 1 and info[0].value == 1
    labels = info[0].labels
    assert labels["version"] == "v1" and labels["candidate_version"] == "" and labels["canary_state"] == "idle"
    assert labels["canary_phase"] == "none"
    assert "snapshot" in labels

    started = client.post("/v1/admin/canary", json={"action": "start", "candidate_version": "v2"}, headers=AUTH)
    assert started.status_code == 200, started.text
    labels = families(client.get("/metrics").text)["streamrec_serving_info"].samples[0].labels
    assert labels["version"] == "v1" and labels["candidate_version"] == "v2"
    assert labels["canary_state"] == "running" and labels["canary_phase"] == "phase1"


def test_two_apps_in_one_process_keep_separate_counts(home: Settings) -> None:
    with TestClient(create_app(api_settings(home))) as first, TestClient(create_app(api_settings(home))) as second:
        first.get("/v1/health")
        first.get("/v1/health")
        second.get("/v1/health")
        count = {
            name: sum(
                s.value
                for s in families(c.get("/metrics").text)["streamrec_http_requests"].samples
                if s.labels["endpoint"] == "/v1/health"
            )
            for name, c in (("first", first), ("second", second))
        }
    assert count == {"first": 2, "second": 1}


STATUS_PHRASES = {status.phrase for status in HTTPStatus} | {status.description for status in HTTPStatus}


def test_openapi_has_written_summaries_descriptions_and_examples(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 8
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        summary = op.get("summary", "")
        # Litestar's default summary is the handler's name in CamelCase ("PostEvents", "Active").
        assert " " in summary and not re.fullmatch(r"[A-Z][A-Za-z]+", summary), (where, summary)
        assert op.get("description"), where
        for code, response in op["responses"].items():
            assert response["description"] not in STATUS_PHRASES, (where, code, response["description"])
            if int(code) >= 400:
                content = response["content"]["application/json"]
                examples = content.get("examples") or {}
                assert examples, (where, code)
                for example in examples.values():
                    value = example["value"]
                    if "status_code" in value:  # an ErrorBody; /v1/health's 503 is a Health body
                        assert value["status_code"] == int(code), (where, code, value)
                    assert isinstance(value.get("detail"), str) and "@" not in value["detail"], (where, code)


def test_swagger_ui_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/schema")
    assert page.status_code == 200
    head = page.text.split("SwaggerUIBundle(")[0]
    assert "https://" not in head and "http://" not in head
    for asset in re.findall(r"(?:src|href)=\"(/schema-assets/[^\"]+)\"", head):
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 10_000, asset
    assert client.get("/schema/swagger").status_code == 200
    assert client.get("/schema/openapi.yaml").status_code == 200
