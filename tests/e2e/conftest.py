"""End-to-end fixtures: a real `streamrec serve` process on a random free loopback port, over a real home."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamrec.settings import Settings

ADMIN_TOKEN = "e2e-admin-token"
E2E_VERSION = "e2e-v1"


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiServer:
    """`streamrec serve` as a subprocess; `start()` waits until /v1/health says ready."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "STREAMREC_HOME": str(home), "STREAMREC_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.log = home / f"server-{self.port}.log"

    def start(self, timeout: float = 120.0) -> ApiServer:
        command = [sys.executable, "-m", "streamrec.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server not ready after {timeout} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing: what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), falling back to SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def served_home(built_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small built warehouse plus a trained, registered and promoted bundle (do not modify: copy it)."""
    from models_ml.registry import promote
    from models_ml.train import train

    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(built_home, home)
    settings = Settings(home=home)
    train(settings, epochs=1, seed=3, version=E2E_VERSION)
    promote(settings, version=E2E_VERSION, by="e2e-tests", reason="e2e fixture")
    return home


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
