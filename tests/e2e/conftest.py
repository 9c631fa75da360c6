"""End-to-end fixtures: a real `streamrec serve` process on a random free loopback port, over a real home."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamrec.core.settings import Settings
from streamrec.lab.server_process import ApiProcess
from tests.conftest import build_once

ADMIN_TOKEN = "e2e-admin-token"
E2E_VERSION = "e2e-v1"


class ApiServer(ApiProcess):
    """The API subprocess with the admin token the e2e tests use."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        super().__init__(home, env={"STREAMREC_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}, workers=workers)

    def start(self, timeout: float = 120.0) -> ApiServer:
        super().start(timeout)
        return self


@pytest.fixture(scope="session")
def served_home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small built warehouse plus a trained, registered and promoted bundle (do not modify: copy it)."""
    from streamrec.models_ml.registry import promote
    from streamrec.models_ml.train import train

    def make(root: Path) -> None:
        shutil.copytree(built_home, root / "home")
        settings = Settings(home=root / "home")
        train(settings, epochs=1, seed=3, version=E2E_VERSION)
        promote(settings, version=E2E_VERSION, by="e2e-tests", reason="e2e fixture")

    return build_once(tmp_path_factory, "served", make) / "home"


@pytest.fixture
def served_copy(served_home: Path, tmp_path: Path) -> Settings:
    """A private copy of `served_home` for a test that writes logs or rebuilds the warehouse."""
    target = tmp_path / "home"
    shutil.copytree(served_home, target)
    return Settings(home=target)


@pytest.fixture
def server(served_copy: Settings) -> Iterator[ApiServer]:
    """A running server over a private copy of the served home."""
    api = ApiServer(served_copy.home).start()
    try:
        yield api
    finally:
        api.stop()
