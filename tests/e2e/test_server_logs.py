"""The server log of a real `streamrec serve`: one format (text or JSON lines), access log included, no faiss noise."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle
from tests.e2e.conftest import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .+")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("log_artifacts")
    write_synthetic_bundle(root, "v1", n_users=40, n_items=80, seed=6)
    return root


def _served_log(artifacts: Path, home: Path, env: dict[str, str]) -> list[str]:
    import shutil

    shutil.copytree(artifacts, home / "artifacts")
    write_active_pointer(home / "artifacts", "v1")
    server = ApiServer(home, env=env).start()
    try:
        assert (
            httpx.get(f"{server.url}/v1/recommendations", params={"user_id": 1, "k": 3}, timeout=10).status_code == 200
        )
        assert httpx.get(f"{server.url}/v1/recommendations", params={"k": 3}, timeout=10).status_code == 400
    finally:
        server.stop()
    return [line for line in server.log.read_text().splitlines() if line.strip()]


def test_json_logs_are_one_object_per_line_with_the_access_log(artifacts: Path, tmp_path: Path) -> None:
    lines = _served_log(artifacts, tmp_path / "home", {"STREAMREC_LOG_FORMAT": "json", "STREAMREC_ACCESS_LOG": "true"})
    records = [json.loads(line) for line in lines]  # every line parses
    for record in records:
        assert {"ts", "level", "logger", "message"} <= set(record), record
        assert record["ts"].endswith("Z")
    loggers = {r["logger"] for r in records}
    assert {"streamrec.api", "uvicorn.error", "uvicorn.access"} <= loggers, loggers
    access = [r["message"] for r in records if r["logger"] == "uvicorn.access"]
    assert any("/v1/recommendations" in m and "200" in m for m in access)
    assert any("400" in m for m in access)
    assert not any("AVX" in r["message"] for r in records)


def test_text_logs_share_one_format_without_faiss_noise(artifacts: Path, tmp_path: Path) -> None:
    lines = _served_log(artifacts, tmp_path / "home", {"STREAMREC_ACCESS_LOG": "true"})
    assert lines and all(TEXT_LINE.match(line) for line in lines), [line for line in lines if not TEXT_LINE.match(line)]
    assert any(" uvicorn.access: " in line for line in lines) and any(" streamrec.api: " in line for line in lines)
    assert not any("AVX512" in line for line in lines)


def test_a_bad_log_format_is_one_error_line(tmp_path: Path) -> None:
    env = {**os.environ, "STREAMREC_HOME": str(tmp_path / "home"), "STREAMREC_LOG_FORMAT": "xml"}
    done = subprocess.run([sys.executable, "-m", "streamrec", "init"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "STREAMREC_LOG_FORMAT='xml' is not valid" in done.stderr
    assert "Traceback" not in done.stderr
