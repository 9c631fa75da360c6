"""Where StreamRec keeps its state: everything lives under STREAMREC_HOME (default ./.streamrec)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# What ships inside the package (the dbt project, its profile, the alembic migrations), found through the
# package itself so that an installed wheel works from any working directory. In a checkout these are the
# top-level folders, reached through the links in streamrec/ (docs/architecture.md).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PACKAGE_DIR / "dbt_project"
PROFILES_DIR = PACKAGE_DIR
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"


@dataclass(frozen=True)
class Settings:
    """Paths of the warehouse, bundles and logs, derived from one home directory."""

    home: Path

    @classmethod
    def from_env(cls) -> Settings:
        """Read STREAMREC_HOME once; relative paths are taken from the current directory."""
        return cls(home=Path(os.environ.get("STREAMREC_HOME", ".streamrec")).resolve())

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file dbt builds and analysts query."""
        return self.home / "warehouse.duckdb"

    @property
    def artifacts_dir(self) -> Path:
        """Versioned model bundles, one directory per version tag."""
        return self.home / "artifacts"

    @property
    def logs_dir(self) -> Path:
        """Append-only impression and event logs written by the API."""
        return self.home / "logs"

    def ensure(self) -> Settings:
        """Create the home directory tree if it does not exist yet."""
        for path in (self.home, self.artifacts_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self
