"""Declarative base for the `ops` tables: one MetaData with stable constraint names, typed columns.

The alembic revisions in `migrations/versions` own the schema; these models mirror them exactly
(tests/integration/test_migrations.py compares the two) so code can read and write with SQLAlchemy.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Double, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase

OPS_SCHEMA = "ops"

# Named constraints keep migrations reproducible: a name the database invents cannot be dropped by name later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every ops model; Python types map to DuckDB VARCHAR, TIMESTAMP, INTEGER and DOUBLE."""

    metadata = MetaData(schema=OPS_SCHEMA, naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute as is)
        str: String(),
        datetime: DateTime(),
        int: Integer(),
        float: Double(),
    }
