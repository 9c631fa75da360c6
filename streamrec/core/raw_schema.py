"""The `raw` schema every source writes: the synthetic generator and the MovieLens loader alike.

These columns are the contract between data sources and dbt staging (`_raw__sources.yml`).
The `truth` schema holds the generator's hidden ground truth (latent preferences, popularity,
position bias) so simulation and estimators can be checked against it; features never read it.
"""

from __future__ import annotations

from collections.abc import Mapping

# Column name -> DuckDB type, in table order. Keys are BIGINT, times are TIMESTAMP (UTC, naive).
RAW_TABLES: Mapping[str, Mapping[str, str]] = {
    "users": {
        "user_id": "BIGINT",
        "signup_ts": "TIMESTAMP",
        "language_code": "VARCHAR",  # one of contracts' language codes, 'unknown' if not known
        "country_code": "VARCHAR",
        "age_band_code": "VARCHAR",  # '<18', '18-24', '25-34', '35-44', '45-54', '55+', 'unknown'
        "gender_code": "VARCHAR",  # 'f', 'm', 'x', 'unknown'
    },
    "creators": {
        "creator_id": "BIGINT",
        "language_code": "VARCHAR",
        "created_ts": "TIMESTAMP",
    },
    "items": {
        "item_id": "BIGINT",
        "creator_id": "BIGINT",
        "title": "VARCHAR",
        "genre_code": "VARCHAR",
        "length_seconds": "DOUBLE",  # running time of the content
        "published_ts": "TIMESTAMP",
    },
    "sessions": {
        "session_id": "BIGINT",
        "user_id": "BIGINT",
        "started_ts": "TIMESTAMP",
        "duration_seconds": "DOUBLE",
        "device_code": "VARCHAR",
    },
    "interactions": {
        "interaction_id": "BIGINT",
        "session_id": "BIGINT",  # NULL where the source has no sessions
        "user_id": "BIGINT",
        "item_id": "BIGINT",
        "event_ts": "TIMESTAMP",
        "event_type": "VARCHAR",  # 'play', 'complete', 'like', 'skip'
        "watch_seconds": "DOUBLE",  # seconds watched, on the play; 0 for complete, like and skip
        "position": "INTEGER",  # slot the item was shown in; NULL for organic (searched) plays
        "rating": "DOUBLE",  # explicit rating where the source has one (MovieLens), else NULL
    },
}

# The key of each table: unique per table. The loaders enforce it (`raw_load.check_raw_keys` after a
# replace, `event_load` before an append) rather than a PRIMARY KEY constraint, whose index DuckDB
# maintains on every insert: with it, the insert and its commit were about half of a 10M-row load
# (docs/benchmarks.md, "Daily operation").
PRIMARY_KEYS: Mapping[str, str] = {
    "users": "user_id",
    "creators": "creator_id",
    "items": "item_id",
    "sessions": "session_id",
    "interactions": "interaction_id",
}


def create_table_sql(table: str, schema: str = "raw") -> str:
    """`CREATE TABLE` for one raw table: its key NOT NULL, but not a PRIMARY KEY (the loaders check it)."""
    key = PRIMARY_KEYS[table]
    columns = ",\n    ".join(
        f"{name} {dtype}" + (" not null" if name == key else "") for name, dtype in RAW_TABLES[table].items()
    )
    return f"create table {schema}.{table} (\n    {columns}\n)"
