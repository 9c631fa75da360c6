"""Alembic environment for the DuckDB warehouse's `ops` schema.

The database URL comes from, in order: `config.attributes["url"]` (set by streamrec.registry),
`alembic -x url=duckdb:///path`, then the application's settings (STREAMREC_HOME), never from alembic.ini.
The alembic_version table stays in the default `main` schema so `downgrade base` can drop `ops` entirely.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context
from alembic.ddl.impl import DefaultImpl
from sqlalchemy.pool import NullPool

from streamrec.core.settings import Settings
from streamrec.core.tables import Base


class DuckDBImpl(DefaultImpl):
    """Alembic has no built-in DuckDB dialect support; DuckDB runs DDL inside transactions, like Postgres."""

    __dialect__ = "duckdb"
    transactional_ddl = True


def database_url() -> str:
    """The warehouse URL: explicit attribute, then `-x url=...`, then STREAMREC_HOME's warehouse."""
    url = context.config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return str(url)
    return f"duckdb:///{Settings.from_env().ensure().warehouse_path}"


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (`alembic upgrade head --sql`) without opening the warehouse."""
    context.configure(
        url=database_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations on a short-lived connection (NullPool: the file is released as soon as we finish)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.config.config_file_name is not None and context.config.attributes.get("configure_logging", True):
    fileConfig(context.config.config_file_name)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
