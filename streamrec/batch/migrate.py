"""Schema migrations of the warehouse's `ops` tables: upgrade, downgrade and read the current revision.

The revisions live in `migrations/versions` (found next to this package, so any working directory
works). Every change runs under the warehouse writer lock, like any other batch writer.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import MIGRATIONS_DIR, Settings
from streamrec.core.warehouse import open_duckdb, open_warehouse, writer_lock


def database_url(path: Path) -> str:
    """The SQLAlchemy URL of a DuckDB file (duckdb-engine dialect)."""
    return f"duckdb:///{path}"


def alembic_config(settings: Settings) -> Config:
    """An alembic Config for this warehouse that does not depend on the working directory or alembic.ini."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise StreamRecError(f"alembic migrations not found at {MIGRATIONS_DIR} (is the repository complete?)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = database_url(settings.warehouse_path)
    return config


def head_revision() -> str:
    """The newest revision in migrations/versions."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if head is None:
        raise StreamRecError(f"no alembic revisions in {MIGRATIONS_DIR / 'versions'}")
    return head


def _wait_until_free(settings: Settings) -> None:
    # alembic's engine fails at once if an analyst holds the file; open_duckdb waits and names the file.
    open_duckdb(settings.warehouse_path).close()


def _migrate(settings: Settings, direction: str, revision: str) -> None:
    _wait_until_free(settings)
    try:
        getattr(command, direction)(alembic_config(settings), revision)
    except sa.exc.OperationalError as exc:
        # A reader may grab the file between the wait above and alembic's own connect.
        raise StreamRecError(f"cannot migrate {settings.warehouse_path}: {str(exc.orig).splitlines()[0]}") from exc


def init_db(settings: Settings) -> str:
    """Create the warehouse if needed and bring `ops` to the newest migration; returns the head revision."""
    with writer_lock(settings):
        _migrate(settings, "upgrade", "head")
        revision = _current_revision_unlocked(settings)
        # The raw file exists from init on (dbt attaches it read-only), and an older home's raw schema moves
        # into it here (ADR 0008).
        open_warehouse(settings, write_raw=True).close()
    if revision is None:
        raise StreamRecError(f"alembic upgrade head left no revision in {settings.warehouse_path}")
    return revision


def downgrade_db(settings: Settings, revision: str = "base") -> str | None:
    """Migrate `ops` down to `revision` ("base" drops every ops table and the schema); returns the new revision."""
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: nothing to downgrade")
    with writer_lock(settings):
        _migrate(settings, "downgrade", revision)
        return _current_revision_unlocked(settings)


def current_revision(settings: Settings) -> str | None:
    """The warehouse's migration revision, or None when it was never migrated (or does not exist)."""
    if not settings.warehouse_path.exists():
        return None
    return _current_revision_unlocked(settings, read_only=True)


def _current_revision_unlocked(settings: Settings, read_only: bool = False) -> str | None:
    engine = sa.create_engine(
        database_url(settings.warehouse_path),
        poolclass=NullPool,
        connect_args={"read_only": True} if read_only else {},
    )
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except sa.exc.OperationalError as exc:
        raise StreamRecError(f"cannot read the migration of {settings.warehouse_path}: {exc.orig}") from exc
    finally:
        engine.dispose()
