"""The layers import one way: `lint-imports` keeps the contract in pyproject.toml, and breaks on a back-up import.

The contract itself is in `[tool.importlinter]` (docs/architecture.md draws it). These tests run the real
import-linter on the checkout, then on a copy of the package with one import that runs back up a layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy's `streamrec` shadows the editable install of the checkout.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_checkout_keeps_the_import_contract() -> None:
    result = _lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "target", "logs")
    for folder in ("streamrec", "api", "models_ml", "contracts", "migrations"):
        shutil.copytree(REPO_ROOT / folder, root / folder, symlinks=True, ignore=ignore)
    return root


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # today's back-up imports, one of each kind the restructure removed
        ("contracts/render.py", "from streamrec.models_ml import bundle"),
        ("models_ml/model.py", "from streamrec.api import config"),
        ("streamrec/core/settings.py", "from streamrec.batch import build"),
        ("api/services/recommender.py", "from streamrec.lab import simulate"),
        ("api/services/canary_state.py", "from streamrec.batch import canary_decision"),
        ("api/services/serving_logs.py", "import duckdb"),
        ("api/services/serving_bundle.py", "from streamrec.models_ml import data"),
    ],
)
def test_an_import_that_runs_back_up_breaks_the_contract(package_copy: Path, module: str, line: str) -> None:
    path = package_copy / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # noqa\n")
    try:
        result = _lint(package_copy)
    finally:
        path.write_text(original)
    dotted = module.removesuffix(".py").replace("/", ".")
    named = dotted if dotted.startswith("streamrec.") else f"streamrec.{dotted}"
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    assert named in result.stdout
