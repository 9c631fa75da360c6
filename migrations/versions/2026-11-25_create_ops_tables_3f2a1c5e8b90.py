"""Create the ops schema: model registry, promotions, impressions, events, offline evaluation lists.

Revision ID: 3f2a1c5e8b90
Revises:
Create Date: 2026-11-25 14:45:00

Written by hand. Keys are explicit (version tags, uuid4 hex, request/position) because DuckDB has no
SERIAL. Constraint names follow streamrec.tables.base.NAMING_CONVENTION.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f2a1c5e8b90"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ops"


def upgrade() -> None:
    """Create schema `ops` and its seven tables."""
    op.execute(sa.text(f"create schema {SCHEMA}"))

    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("contract_sha256", sa.String(), nullable=False),
        sa.Column("manifest_sha256", sa.String(), nullable=False),
        sa.Column("bundle_path", sa.String(), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("n_items", sa.Integer(), nullable=True),
        sa.Column("index_kind", sa.String(), nullable=True),
        sa.Column("index_recall_at_500", sa.Double(), nullable=True),
        sa.Column("metrics_json", sa.String(), nullable=True),
        sa.Column("notes", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("version", name="pk_model_versions"),
        schema=SCHEMA,
    )
    op.create_table(
        "bundle_files",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("file_name", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version", "file_name", name="pk_bundle_files"),
        schema=SCHEMA,
    )
    op.create_table(
        "promotions",
        sa.Column("promotion_id", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("previous_version", sa.String(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("promoted_at", sa.DateTime(), nullable=False),
        sa.Column("promoted_by", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("promotion_id", name="pk_promotions"),
        sa.CheckConstraint("action in ('promote', 'rollback')", name="ck_promotions_action"),
        schema=SCHEMA,
    )
    op.create_table(
        "impressions",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("served_at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("propensity", sa.Double(), nullable=True),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("canary_phase", sa.String(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", "position", name="pk_impressions"),
        schema=SCHEMA,
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("watch_seconds", sa.Double(), nullable=True),
        sa.Column("event_ts", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
        schema=SCHEMA,
    )
    op.create_table(
        "offline_recommendations",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("version", "policy", "stage", "user_id", "rank", name="pk_offline_recommendations"),
        sa.CheckConstraint("stage in ('retrieval', 'ranking')", name="ck_offline_recommendations_stage"),
        schema=SCHEMA,
    )
    op.create_table(
        "offline_holdout",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version", "user_id", "item_id", name="pk_offline_holdout"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    """Drop the seven tables, then the (now empty) schema; RESTRICT so objects made outside migrations survive."""
    for table in (
        "offline_holdout",
        "offline_recommendations",
        "events",
        "impressions",
        "promotions",
        "bundle_files",
        "model_versions",
    ):
        op.drop_table(table, schema=SCHEMA)
    op.execute(sa.text(f"drop schema {SCHEMA} restrict"))
