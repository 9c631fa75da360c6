"""`ops.feature_snapshots`: one row per online feature snapshot written by `streamrec materialize`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class FeatureSnapshot(Base):
    """A snapshot of users' latest features (models_ml/feature_snapshot.py), versioned by as_of and contract hash."""

    __tablename__ = "feature_snapshots"

    snapshot_id: Mapped[str] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    as_of: Mapped[datetime]
    contract_sha256: Mapped[str]
    manifest_sha256: Mapped[str]
    snapshot_path: Mapped[str]
    n_users: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
