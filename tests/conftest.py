"""Shared fixtures: every test gets its own STREAMREC_HOME; a small generated warehouse is built once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamrec.core.settings import Settings

SMALL = {"users": 300, "items": 200, "days": 40, "seed": 1}


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

    home = tmp_path_factory.mktemp("generated") / "home"
    settings = Settings(home=home).ensure()
    init_db(settings)
    generate(settings, **SMALL)
    return home


@pytest.fixture(scope="session")
def built_home(generated_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small warehouse after a passing `streamrec build` and reference capture (do not modify)."""
    import os

    from streamrec.batch.build import build
    from streamrec.batch.reference import capture

    home = tmp_path_factory.mktemp("built") / "home"
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
    return home


@pytest.fixture
def copy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Copy a session home into this test's tmp dir (so the test may modify it) and point STREAMREC_HOME at it."""

    def _copy(source: Path) -> Settings:
        target = tmp_path / "home"
        shutil.copytree(source, target)
        monkeypatch.setenv("STREAMREC_HOME", str(target))
        return Settings(home=target)

    yield _copy
