"""`ops.impressions`: every item the API showed, one row per (request, position), loaded by `streamrec ingest`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class Impression(Base):
    """An item shown at a position of a response, with the score and propensity needed for off-policy evaluation."""

    __tablename__ = "impressions"

    request_id: Mapped[str] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    served_at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int] = mapped_column(BigInteger)
    creator_id: Mapped[int | None] = mapped_column(BigInteger)
    score: Mapped[float | None]
    propensity: Mapped[float | None]
    policy: Mapped[str]
    model_version: Mapped[str]
    canary_phase: Mapped[str | None]
    latency_ms: Mapped[float | None]
    snapshot_id: Mapped[str | None]  # the feature snapshot the request read (None: the bundle's own features)
    feature_age_seconds: Mapped[float | None]  # served_at minus the as_of of the features the request read
