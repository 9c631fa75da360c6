"""`ops.offline_recommendations`: ranked lists `streamrec train` writes for offline evaluation in dbt."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, PrimaryKeyConstraint
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class OfflineRecommendation(Base):
    """One ranked item for a held-out user, per model version, policy and stage (retrieval or ranking)."""

    __tablename__ = "offline_recommendations"
    __table_args__ = (
        PrimaryKeyConstraint("version", "policy", "stage", "user_id", "rank"),
        CheckConstraint("stage in ('retrieval', 'ranking')", name="stage"),
    )

    # Column order is the agreed one (writers may `insert ... select *`); the key order differs on purpose.
    version: Mapped[str]
    user_id: Mapped[int] = mapped_column(BigInteger)
    stage: Mapped[str]
    policy: Mapped[str]
    item_id: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int]
    score: Mapped[float | None]
