"""The wheel is the product: built from the checkout, installed into a fresh venv outside the repository, it runs
the whole loop (init, generate, build, train, promote, one served request) from a temporary directory.

This catches what an editable checkout hides: package data that is not shipped (the dbt project, its profile,
the contract YAML, the migrations) and paths resolved from the working directory instead of the package.

The fresh venv sees only the wheel's runtime requirements, transitively (markers and extras honoured): each is
linked from the test's own environment rather than installed a second time (unpacking torch, dbt and FAISS
again took 2 of the test's 2.6 minutes). A module the wheel imports but does not declare is therefore still
missing there, as it would be on a user's machine.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # Build from a clean copy of the tracked files, as a release would (no .venv, no build/ leftovers).
    source = tmp_path_factory.mktemp("source") / "streamrec"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout.split(
        b"\0"
    )
    for name in filter(None, tracked):
        path = Path(name.decode())
        target = source / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO_ROOT / path).is_symlink():
            target.symlink_to(os.readlink(REPO_ROOT / path))
        elif (REPO_ROOT / path).is_file():
            shutil.copy2(REPO_ROOT / path, target)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(dist)]
    _run(pip_wheel, dist, dict(os.environ))
    (built,) = dist.glob("streamrec-*.whl")
    return built


def test_wheel_ships_one_namespace_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("streamrec-")}
    assert top == {"streamrec"}  # no generic top-level names (api, contracts, migrations, models_ml)
    for required in (
        "streamrec/profiles.yml",
        "streamrec/dbt_project/dbt_project.yml",
        "streamrec/dbt_project/models/features/user_features.sql",
        "streamrec/contracts/features.yml",
        "streamrec/migrations/env.py",
        "streamrec/migrations/script.py.mako",
        "streamrec/api/controllers/recommendations.py",
        "streamrec/api/services/recommender.py",
        "streamrec/core/tables/impression.py",
    ):
        assert required in names, required
    assert not [n for n in names if "/target/" in n or n.endswith(".duckdb")]
    assert len([n for n in names if n.startswith("streamrec/migrations/versions/") and n.endswith(".py")]) >= 2


def _runtime_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that `requirements` need, transitively, without any extra not asked for."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(text, "") for text in requirements]
    while todo:
        text, extra = todo.pop()
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        dist = metadata.distribution(requirement.name)
        name = canonicalize_name(dist.metadata["Name"])
        found[name] = dist
        for wanted in ("", *sorted(requirement.extras)):
            if (name, wanted) not in done:
                done.add((name, wanted))
                todo.extend((child, wanted) for child in dist.requires or [])
    return found


def _link_requirements(wheel: Path, venv: Path) -> int:
    """Link the wheel's runtime closure from this environment into the venv's site-packages; how many dists."""
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    (site,) = (venv / "lib").glob("python3*/site-packages")
    closure = _runtime_closure(requires)
    for dist in closure.values():
        # top-level entries only (package dirs, modules, .pth, dist-info); namespace dirs such as dbt/ are shared
        for top in sorted({Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}):
            source, target = Path(str(dist.locate_file(top))), site / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
    return len(closure)


def test_installed_wheel_runs_the_loop_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    assert _link_requirements(wheel, venv) > 20
    pip = str(venv / "bin" / "pip")
    _run([pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path, clean_env)
    assert "No broken requirements" in _run([pip, "check"], tmp_path, clean_env)  # every declared version is met
    # nothing beyond the declared closure: the test's own tools (pytest, httpx) are not visible to the wheel
    probe = "import importlib.util as u; print([m for m in ('pytest', 'xdist') if u.find_spec(m)])"
    assert _run([str(venv / "bin" / "python"), "-c", probe], tmp_path, clean_env).strip() == "[]"

    work = tmp_path / "elsewhere"  # not the repository, not the venv
    work.mkdir()
    env = {**clean_env, "STREAMREC_HOME": str(work / "home"), "PATH": f"{venv / 'bin'}:{clean_env['PATH']}"}
    streamrec = str(venv / "bin" / "streamrec")
    module = _run([str(venv / "bin" / "python"), "-c", "import streamrec.api.app as m; print(m.__file__)"], work, env)
    assert str(venv) in module and str(REPO_ROOT) not in module

    _run([streamrec, "init"], work, env)
    _run([streamrec, "generate", "--users", "300", "--items", "200", "--days", "40", "--seed", "1"], work, env)
    _run([streamrec, "build"], work, env)
    _run([streamrec, "train", "--epochs", "1", "--version", "wheel1"], work, env)
    _run([streamrec, "promote", "wheel1"], work, env)

    port = _free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [streamrec, "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=work, env=env, stdout=log, stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, (work / "server.log").read_text()
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        response = httpx.get(f"{url}/v1/recommendations", params={"user_id": 1, "k": 5}, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "wheel1"
        assert len(body["items"]) == 5
    finally:
        server.kill()
        server.wait()
        log.close()
    assert json.loads((work / "home" / "artifacts" / "ACTIVE.json").read_text())["version"] == "wheel1"
