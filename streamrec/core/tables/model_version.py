"""`ops.model_versions`: one row per registered model bundle (version tag, provenance, index quality)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from streamrec.core.tables.base import Base


class ModelVersion(Base):
    """A co-versioned bundle (retrieval model, index, ranker) and the contract it was trained against."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    contract_sha256: Mapped[str]
    manifest_sha256: Mapped[str]
    bundle_path: Mapped[str]
    embedding_dim: Mapped[int | None]
    n_items: Mapped[int | None]
    index_kind: Mapped[str | None]
    index_recall_at_500: Mapped[float | None]
    metrics_json: Mapped[str | None]
    notes: Mapped[str | None]
