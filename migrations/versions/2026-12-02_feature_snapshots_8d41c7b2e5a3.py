"""Online feature snapshots: ops.feature_snapshots, and which snapshot (and how old) each impression read.

Revision ID: 8d41c7b2e5a3
Revises: 3f2a1c5e8b90
Create Date: 2026-12-02 12:50:00

Written by hand. The two impression columns are nullable: rows logged before snapshots existed (and
requests served from a bundle's own features) have no snapshot id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d41c7b2e5a3"
down_revision: str | Sequence[str] | None = "3f2a1c5e8b90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ops"


def upgrade() -> None:
    """Create ops.feature_snapshots; add snapshot_id and feature_age_seconds to ops.impressions."""
    op.create_table(
        "feature_snapshots",
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("contract_sha256", sa.String(), nullable=False),
        sa.Column("manifest_sha256", sa.String(), nullable=False),
        sa.Column("snapshot_path", sa.String(), nullable=False),
        sa.Column("n_users", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", name="pk_feature_snapshots"),
        schema=SCHEMA,
    )
    op.add_column("impressions", sa.Column("snapshot_id", sa.String(), nullable=True), schema=SCHEMA)
    op.add_column("impressions", sa.Column("feature_age_seconds", sa.Double(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    """Drop the two impression columns and ops.feature_snapshots."""
    op.drop_column("impressions", "feature_age_seconds", schema=SCHEMA)
    op.drop_column("impressions", "snapshot_id", schema=SCHEMA)
    op.drop_table("feature_snapshots", schema=SCHEMA)
