"""Create ops.raw_loads: one row per file `streamrec load events` appended to the raw schema.

Revision ID: 7c4e2a9d1b36
Revises: 8d41c7b2e5a3
Create Date: 2026-12-02 13:00:00

Written by hand. `sha256` of the file's bytes makes a re-load of the same file a no-op; the event-time
range and `loaded_at` let `dbt source freshness` say when raw data last arrived (source ops.raw_loads).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c4e2a9d1b36"
down_revision: str | Sequence[str] | None = "8d41c7b2e5a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ops"


def upgrade() -> None:
    """Create ops.raw_loads."""
    op.create_table(
        "raw_loads",
        sa.Column("load_id", sa.String(), nullable=False),
        sa.Column("table_name", sa.String(), nullable=False),
        sa.Column("file_path", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("rows_in_file", sa.BigInteger(), nullable=False),
        sa.Column("rows_inserted", sa.BigInteger(), nullable=False),
        sa.Column("min_event_ts", sa.DateTime(), nullable=True),
        sa.Column("max_event_ts", sa.DateTime(), nullable=True),
        sa.Column("loaded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("load_id", name="pk_raw_loads"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    """Drop ops.raw_loads (the raw rows it describes stay)."""
    op.drop_table("raw_loads", schema=SCHEMA)
