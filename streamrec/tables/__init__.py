"""SQLAlchemy models of the alembic-managed `ops` tables, one small module per table."""

from streamrec.tables.base import NAMING_CONVENTION, OPS_SCHEMA, Base
from streamrec.tables.bundle_file import BundleFile
from streamrec.tables.event import Event
from streamrec.tables.impression import Impression
from streamrec.tables.model_version import ModelVersion
from streamrec.tables.offline_holdout import OfflineHoldout
from streamrec.tables.offline_recommendation import OfflineRecommendation
from streamrec.tables.promotion import PROMOTION_ACTIONS, Promotion

__all__ = [
    "NAMING_CONVENTION",
    "OPS_SCHEMA",
    "PROMOTION_ACTIONS",
    "Base",
    "BundleFile",
    "Event",
    "Impression",
    "ModelVersion",
    "OfflineHoldout",
    "OfflineRecommendation",
    "Promotion",
]
