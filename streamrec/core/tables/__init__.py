"""SQLAlchemy models of the alembic-managed `ops` tables, one small module per table."""

from streamrec.core.tables.base import NAMING_CONVENTION, OPS_SCHEMA, Base
from streamrec.core.tables.bundle_file import BundleFile
from streamrec.core.tables.event import Event
from streamrec.core.tables.feature_snapshot import FeatureSnapshot
from streamrec.core.tables.impression import Impression
from streamrec.core.tables.model_version import ModelVersion
from streamrec.core.tables.offline_holdout import OfflineHoldout
from streamrec.core.tables.offline_recommendation import OfflineRecommendation
from streamrec.core.tables.promotion import PROMOTION_ACTIONS, Promotion
from streamrec.core.tables.raw_load import RawLoad

__all__ = [
    "NAMING_CONVENTION",
    "OPS_SCHEMA",
    "PROMOTION_ACTIONS",
    "Base",
    "BundleFile",
    "Event",
    "FeatureSnapshot",
    "Impression",
    "ModelVersion",
    "OfflineHoldout",
    "OfflineRecommendation",
    "Promotion",
    "RawLoad",
]
