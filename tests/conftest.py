"""Shared fixtures: every test gets its own STREAMREC_HOME; a small generated warehouse is built once.

`make test` runs the suite on two pytest-xdist workers. A session fixture that builds something expensive
(a warehouse, a trained bundle) goes through `build_once`, so that the two workers build it once between
them rather than once each.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from streamrec.core.settings import Settings

SMALL = {"users": 300, "items": 200, "days": 40, "seed": 1}


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder `make(folder)` filled once per test run, shared by every xdist worker of the run (do not modify it).

    Without xdist the folder lives in the session's base temp dir; under xdist each worker's base temp dir is
    `<run>/popen-gwN`, so the run's own directory (its parent) is the one place they share. A file lock makes
    the second worker wait for the first one's build instead of repeating it; `.done` is written last, so a
    build that failed half-way is started again rather than reused.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    root = base / "shared" / name
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / ".done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            make(root)
            (root / ".done").touch()
    return root


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh, empty STREAMREC_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("STREAMREC_HOME", str(home))
    return Settings(home=home).ensure()


@pytest.fixture(scope="session")
def generated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated warehouse with small synthetic raw data, made once per session (do not modify)."""
    from streamrec.batch.migrate import init_db
    from streamrec.lab.generate import generate

    def make(root: Path) -> None:
        settings = Settings(home=root / "home").ensure()
        init_db(settings)
        generate(settings, **SMALL)

    return build_once(tmp_path_factory, "generated", make) / "home"


@pytest.fixture(scope="session")
def built_home(generated_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small warehouse after a passing `streamrec build` and reference capture (do not modify)."""
    from streamrec.batch.build import build
    from streamrec.batch.reference import capture

    def make(root: Path) -> None:
        home = root / "home"
        shutil.copytree(generated_home, home)
        settings = Settings(home=home)
        old = os.environ.get("STREAMREC_HOME")
        os.environ["STREAMREC_HOME"] = str(home)
        try:
            build(settings)
            capture(settings, tag="baseline")
        finally:
            if old is None:
                os.environ.pop("STREAMREC_HOME", None)
            else:
                os.environ["STREAMREC_HOME"] = old

    return build_once(tmp_path_factory, "built", make) / "home"


@pytest.fixture
def copy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Copy a session home into this test's tmp dir (so the test may modify it) and point STREAMREC_HOME at it."""

    def _copy(source: Path) -> Settings:
        target = tmp_path / "home"
        shutil.copytree(source, target)
        monkeypatch.setenv("STREAMREC_HOME", str(target))
        return Settings(home=target)

    yield _copy
