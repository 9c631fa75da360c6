"""`ops.promotions`: the append-only history of which version serves; the latest row wins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base

PROMOTION_ACTIONS = ("promote", "rollback")


class Promotion(Base):
    """One promote or rollback; keys are uuid4 hex strings because DuckDB has no SERIAL."""

    __tablename__ = "promotions"
    __table_args__ = (CheckConstraint("action in ('promote', 'rollback')", name="action"),)

    promotion_id: Mapped[str] = mapped_column(primary_key=True)
    version: Mapped[str]
    previous_version: Mapped[str | None]
    action: Mapped[str]
    promoted_at: Mapped[datetime]
    promoted_by: Mapped[str | None]
    reason: Mapped[str]
