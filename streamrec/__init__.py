"""StreamRec: a recommender platform built around a SQL feature warehouse."""

__version__ = "0.1.0"
