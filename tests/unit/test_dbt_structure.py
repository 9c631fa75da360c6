"""The dbt project's conventions, checked on the files: source() only in staging, staging named by source."""

from __future__ import annotations

import re

from tests.paths import REPO_ROOT

MODELS = REPO_ROOT / "dbt_project" / "models"
SOURCE_CALL = re.compile(r"\b(?:source|optional_source)\(")


def test_source_appears_only_in_staging() -> None:
    outside = [
        path.relative_to(MODELS).as_posix()
        for path in MODELS.rglob("*.sql")
        if path.relative_to(MODELS).parts[0] != "staging" and SOURCE_CALL.search(path.read_text())
    ]
    assert outside == []


def test_staging_models_are_named_by_source_folder_and_entity() -> None:
    staging = MODELS / "staging"
    for path in staging.rglob("*.sql"):
        folder = path.parent.name
        assert re.fullmatch(rf"stg_{folder}__[a-z_]+s", path.stem), path.relative_to(MODELS)
        assert SOURCE_CALL.search(path.read_text()), f"{path.name} reads no source"
    for folder in (p for p in staging.iterdir() if p.is_dir()):
        assert list(folder.glob(f"_{folder.name}__sources.yml")), f"{folder.name} has no _{folder.name}__sources.yml"
