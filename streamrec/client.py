"""The notebook client's public import path: `from streamrec.client import Client` (streamrec/lab/client.py)."""

from streamrec.lab.client import Client, RecommendationPage, as_arrow

__all__ = ["Client", "RecommendationPage", "as_arrow"]
