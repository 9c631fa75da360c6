"""`ops.offline_holdout`: the held-out (user, item) pairs offline recommendations are scored against."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class OfflineHoldout(Base):
    """A positive interaction kept out of training for one model version."""

    __tablename__ = "offline_holdout"

    version: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
