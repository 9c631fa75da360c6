"""`ops.raw_loads`: one row per file `streamrec load events` appended to raw (what, when, how much, checksum)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class RawLoad(Base):
    """One loaded file; a file whose `sha256` is already here for the same table is skipped on a re-load."""

    __tablename__ = "raw_loads"

    load_id: Mapped[str] = mapped_column(primary_key=True)
    table_name: Mapped[str]
    file_path: Mapped[str]
    sha256: Mapped[str]
    rows_in_file: Mapped[int] = mapped_column(BigInteger)
    rows_inserted: Mapped[int] = mapped_column(BigInteger)
    min_event_ts: Mapped[datetime | None]
    max_event_ts: Mapped[datetime | None]
    loaded_at: Mapped[datetime]
