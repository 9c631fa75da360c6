"""Paths of the checkout the tests run from (the package itself finds its data through `streamrec.core.settings`)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
