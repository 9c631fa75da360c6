"""`ops.bundle_files`: the checksum and size of every file in a registered bundle."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class BundleFile(Base):
    """One file of a bundle; promotion re-hashes the files and compares against these rows."""

    __tablename__ = "bundle_files"

    version: Mapped[str] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(primary_key=True)
    sha256: Mapped[str]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
