"""Schemathesis against the served OpenAPI schema on a loopback server: no 5xx, responses match the schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle
from tests.e2e.conftest import ADMIN_TOKEN, ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 40  # per operation: bounded so the suite stays fast


@pytest.fixture(scope="module")
def synthetic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("schemathesis") / "home"
    artifacts = home / "artifacts"
    write_synthetic_bundle(artifacts, "v1", n_users=100, n_items=300, seed=4)
    write_active_pointer(artifacts, "v1")
    api = ApiServer(Path(home)).start()
    try:
        yield api
    finally:
        api.stop()


def test_every_operation_conforms(synthetic_server: ApiServer) -> None:
    raw = httpx.get(f"{synthetic_server.url}/schema/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /v1/recommendations", "POST /v1/events", "GET /v1/health"}
    calls: Counter = Counter()
    for operation in operations:
        for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                calls[(operation.label, mode)] += _fuzz(operation, synthetic_server.url, headers, mode)
    assert all(calls[(op.label, GenerationMode.POSITIVE)] > 0 for op in operations), calls
    assert calls[("GET /v1/recommendations", GenerationMode.NEGATIVE)] > 10, calls
    assert calls[("POST /v1/events", GenerationMode.NEGATIVE)] > 10, calls


def _fuzz(operation: schemathesis.APIOperation, url: str, headers: dict, mode: GenerationMode) -> int:
    calls: list = []

    # Negative cases (wrong types, out-of-range values, missing fields) must be 4xx, never 5xx.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)
        calls.append(case)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise  # an operation without inputs has no invalid request to generate; any other cannot be skipped
    return len(calls)
