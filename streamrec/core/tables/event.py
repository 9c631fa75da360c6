"""`ops.events`: user feedback (play, complete, like, skip, ...) reported to the API, loaded by `streamrec ingest`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class Event(Base):
    """One feedback event; `request_id` links it to the impression it answers when the client sent one."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    request_id: Mapped[str | None]
    user_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str]
    watch_seconds: Mapped[float | None]
    event_ts: Mapped[datetime]
    received_at: Mapped[datetime]
