"""Load MovieLens-100K (RecBole atomic files) into the raw schema, with documented stand-ins.

MovieLens has ratings, user demographics and movie genres, but no creators, sessions, watch
time, languages or countries. The stand-ins (see docs/data.md):

- every rating is a 'play' (rating kept) whose watch time is rating / 5 of a 100-minute movie;
  a 5 is a full watch and also yields a 'complete', a rating >= 4 also yields a 'like';
- a session is one user's ratings on one UTC calendar day, lasting the stand-in watch time
  (capped at 7200 s, the contract's session-length maximum), on device 'unknown';
- a creator is a release decade x first genre ("1990s drama"), language 'unknown';
- users sign up at their first rating; language and country are 'unknown' (zip and occupation
  are not used);
- a movie is published on Jan 1 of its release year, or at its first rating if that is earlier
  or the year is unknown.

There is no ground truth, so stale `truth` tables from an earlier `generate` are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from streamrec.batch.raw_load import AtomicFile, insert_arrow, read_atomic_file, replace_raw
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

PREFIX = "ml-100k"
INTER_COLUMNS = {"user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float"}
ITEM_COLUMNS = {"item_id": "token", "movie_title": "token_seq", "release_year": "token", "class": "token_seq"}
USER_COLUMNS = {"user_id": "token", "age": "token", "gender": "token"}

MOVIE_LENGTH_SECONDS = 6_000.0  # MovieLens has no running times: every movie counts as 100 minutes
SESSION_CAP_SECONDS = 7_200.0  # the contract's user_avg_session_length_7d_seconds maximum
LIKE_MIN_RATING = 4.0
COMPLETE_RATING = 5.0
MAX_RATING = 5.0
# MovieLens genre names -> the contract's genre codes.
GENRES: Mapping[str, str] = {
    "Action": "action",
    "Adventure": "adventure",
    "Animation": "animation",
    "Children's": "childrens",
    "Comedy": "comedy",
    "Crime": "crime",
    "Documentary": "documentary",
    "Drama": "drama",
    "Fantasy": "fantasy",
    "Film-Noir": "film_noir",
    "Horror": "horror",
    "Musical": "musical",
    "Mystery": "mystery",
    "Romance": "romance",
    "Sci-Fi": "sci_fi",
    "Thriller": "thriller",
    "War": "war",
    "Western": "western",
    "unknown": "unknown",
}
GENDERS: Mapping[str, str] = {"m": "m", "f": "f", "x": "x", "": "unknown", "unknown": "unknown"}
AGE_BANDS = ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (200, "55+"))
YEAR = re.compile(r"^[0-9]{4}$")  # ASCII: \d also matches other scripts' digits
DIGITS = re.compile(r"[0-9]+")
MAX_BIGINT = 2**63 - 1


def load_movielens(settings: Settings, directory: Path) -> str:
    """Validate `ml-100k.{user,item,inter}` in `directory`, then replace the raw schema with them.

    Everything is checked before the warehouse is opened and written in one transaction, so a
    bad file leaves the warehouse exactly as it was. Returns a one-line summary.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise StreamRecError(f"{directory}: not a directory (expected {PREFIX}.inter, .item and .user in it)")
    users = read_atomic_file(directory / f"{PREFIX}.user", USER_COLUMNS, key=("user_id",))
    items = read_atomic_file(directory / f"{PREFIX}.item", ITEM_COLUMNS, key=("item_id",))
    inter = read_atomic_file(directory / f"{PREFIX}.inter", INTER_COLUMNS, key=("user_id", "item_id", "timestamp"))
    tables = _to_raw_tables(users, items, inter)
    with replace_raw(settings, drop_schemas=("truth",)) as con:  # no ground truth for real data
        for name, table in tables.items():
            insert_arrow(con, f"raw.{name}", table)
    counts = {name: table.num_rows for name, table in tables.items()}
    kinds = tables["interactions"].column("event_type").to_pylist()
    return (
        f"loaded MovieLens from {directory}: {counts['users']:,} users, {counts['items']:,} items, "
        f"{counts['creators']:,} creators, {counts['sessions']:,} sessions, {counts['interactions']:,} interactions "
        f"({kinds.count('play'):,} rated plays, {kinds.count('complete'):,} completes, {kinds.count('like'):,} likes)"
    )


@dataclass(frozen=True)
class _Ratings:
    """The validated rating rows: who rated what, how much, and when (Unix seconds)."""

    user_ids: list[int]
    item_ids: list[int]
    user: list[int]
    item: list[int]
    rating: np.ndarray
    stamp: np.ndarray


def _to_raw_tables(users: AtomicFile, items: AtomicFile, inter: AtomicFile) -> dict[str, pa.Table]:
    """The five raw tables from the three atomic files, after every check has passed."""
    ratings = _validated_ratings(users, items, inter)
    creators, item_table = _creator_and_item_tables(items, ratings)
    sessions, interactions = _session_and_interaction_tables(ratings)
    return {
        "users": _user_table(users, ratings),
        "creators": creators,
        "items": item_table,
        "sessions": sessions,
        "interactions": interactions,
    }


def _validated_ratings(users: AtomicFile, items: AtomicFile, inter: AtomicFile) -> _Ratings:
    """Integer ids, known references, ratings in (0, MAX_RATING] and times before 2100, or a one-line error."""
    user_ids = _integer_ids(users, "user_id", unique=True)
    item_ids = _integer_ids(items, "item_id", unique=True)
    rating_user = _integer_ids(inter, "user_id")
    rating_item = _integer_ids(inter, "item_id")
    _check_references(inter, "user_id", rating_user, user_ids, users.path.name)
    _check_references(inter, "item_id", rating_item, item_ids, items.path.name)
    rating = np.array(inter.columns["rating"], dtype=np.float64)
    stamp = np.array(inter.columns["timestamp"], dtype=np.float64)
    for row in np.flatnonzero((rating <= 0) | (rating > MAX_RATING))[:1]:
        raise StreamRecError(f"{inter.where(row, 'rating')}: {rating[row]:g} is outside (0, {MAX_RATING:g}]")
    latest = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    for row in np.flatnonzero((stamp < 0) | (stamp >= latest))[:1]:
        raise StreamRecError(f"{inter.where(row, 'timestamp')}: {stamp[row]:g} is not a Unix time before 2100")
    if len(inter) == 0:
        raise StreamRecError(f"{inter.path.name}: no ratings")
    return _Ratings(user_ids, item_ids, rating_user, rating_item, rating, stamp)


def _creator_and_item_tables(items: AtomicFile, ratings: _Ratings) -> tuple[pa.Table, pa.Table]:
    """Items with their first genre, published Jan 1 of the release year (never after the first rating).

    MovieLens has no creators, so one creator stands for each (decade, genre) pair.
    """
    item_row = {item: row for row, item in enumerate(ratings.item_ids)}
    rated_item_row = np.array([item_row[i] for i in ratings.item], dtype=np.int64)
    first_rating = np.full(len(ratings.item_ids), np.inf)
    np.minimum.at(first_rating, rated_item_row, ratings.stamp)
    genre = [_first_genre(items, row) for row in range(len(items))]
    year_start = np.array([_year_start(items, row) for row in range(len(items))])
    published = np.fmin(year_start, first_rating)  # fmin ignores the NaN of unknown years
    published = np.where(np.isfinite(published), published, ratings.stamp.min())
    decade = [f"{datetime.fromtimestamp(t, UTC).year // 10 * 10}s" for t in published]
    creator_keys = sorted(set(zip(decade, genre, strict=True)))
    creator_of = {key: index + 1 for index, key in enumerate(creator_keys)}
    item_creator = np.array([creator_of[key] for key in zip(decade, genre, strict=True)], dtype=np.int64)
    creator_created = np.full(len(creator_keys), np.inf)
    np.minimum.at(creator_created, item_creator - 1, published)
    creators = pa.table(
        {
            "creator_id": np.arange(1, len(creator_keys) + 1, dtype=np.int64),
            "language_code": ["unknown"] * len(creator_keys),
            "created_ts": _timestamps(creator_created),
        }
    )
    item_table = pa.table(
        {
            "item_id": np.array(ratings.item_ids, dtype=np.int64),
            "creator_id": item_creator,
            "title": [" ".join(words) for words in items.columns["movie_title"]],
            "genre_code": genre,
            "length_seconds": np.full(len(ratings.item_ids), MOVIE_LENGTH_SECONDS),
            "published_ts": _timestamps(published),
        }
    )
    return creators, item_table


def _user_table(users: AtomicFile, ratings: _Ratings) -> pa.Table:
    """Users with the file's demographics, signed up at their first rating."""
    user_row = {user: row for row, user in enumerate(ratings.user_ids)}
    rated_user_row = np.array([user_row[u] for u in ratings.user], dtype=np.int64)
    signup = np.full(len(ratings.user_ids), np.inf)
    np.minimum.at(signup, rated_user_row, ratings.stamp)
    signup = np.where(np.isfinite(signup), signup, ratings.stamp.min())
    return pa.table(
        {
            "user_id": np.array(ratings.user_ids, dtype=np.int64),
            "signup_ts": _timestamps(signup),
            "language_code": ["unknown"] * len(ratings.user_ids),
            "country_code": ["unknown"] * len(ratings.user_ids),
            "age_band_code": [_age_band(users, row) for row in range(len(users))],
            "gender_code": [_gender(users, row) for row in range(len(users))],
        }
    )


def _session_and_interaction_tables(ratings: _Ratings) -> tuple[pa.Table, pa.Table]:
    """One session per user and UTC day with ratings; each rating a play, and a complete and a like above a bar."""
    rating, stamp = ratings.rating, ratings.stamp
    watch = rating / MAX_RATING * MOVIE_LENGTH_SECONDS
    day = np.floor(stamp / 86_400.0).astype(np.int64)
    pairs, session_of = np.unique(np.stack([np.array(ratings.user), day], axis=1), axis=0, return_inverse=True)
    session_of = session_of.ravel()
    started = np.full(len(pairs), np.inf)
    np.minimum.at(started, session_of, stamp)
    duration = np.minimum(np.bincount(session_of, weights=watch, minlength=len(pairs)), SESSION_CAP_SECONDS)
    plays = np.arange(len(rating))
    completes = np.flatnonzero(rating >= COMPLETE_RATING)
    likes = np.flatnonzero(rating >= LIKE_MIN_RATING)
    source = np.concatenate([plays, completes, likes])
    kind = ["play"] * plays.size + ["complete"] * completes.size + ["like"] * likes.size
    is_play = np.arange(source.size) < plays.size
    sessions = pa.table(
        {
            "session_id": np.arange(1, len(pairs) + 1, dtype=np.int64),
            "user_id": pairs[:, 0].astype(np.int64),
            "started_ts": _timestamps(started),
            "duration_seconds": duration,
            "device_code": ["unknown"] * len(pairs),
        }
    )
    interactions = pa.table(
        {
            "interaction_id": np.arange(1, source.size + 1, dtype=np.int64),
            "session_id": session_of[source].astype(np.int64) + 1,
            "user_id": np.array(ratings.user, dtype=np.int64)[source],
            "item_id": np.array(ratings.item, dtype=np.int64)[source],
            "event_ts": _timestamps(stamp[source]),
            "event_type": kind,
            "watch_seconds": np.where(is_play, watch[source], 0.0),
            "position": pa.nulls(source.size, pa.int32()),
            "rating": pa.array(rating[source], mask=~is_play),
        }
    )
    return sessions, interactions


def _integer_ids(data: AtomicFile, column: str, unique: bool = False) -> list[int]:
    """Token ids as integers (the raw schema keys are BIGINT); refuse anything else with its line.

    Only ASCII digits (str.isdigit also accepts '²', which int() refuses), at most the largest BIGINT,
    and, for a key column, no two spellings of one id (`07` and `7` are both user 7).
    """
    ids = []
    first: dict[int, int] = {}
    for row, token in enumerate(data.columns[column]):
        if not DIGITS.fullmatch(token):
            raise StreamRecError(f"{data.where(row, column)}: id {token!r} is not a non-negative integer")
        value = int(token)
        if value > MAX_BIGINT:
            raise StreamRecError(f"{data.where(row, column)}: id {token} is larger than the largest id ({MAX_BIGINT})")
        if unique:
            if value in first:
                raise StreamRecError(
                    f"{data.where(row, column)}: id {token!r} is id {value} again, first on line "
                    f"{data.line_numbers[first[value]]} (as {data.columns[column][first[value]]!r})"
                )
            first[value] = row
        ids.append(value)
    return ids


def _check_references(inter: AtomicFile, column: str, ids: list[int], known: list[int], source: str) -> None:
    known_set = set(known)
    for row, value in enumerate(ids):
        if value not in known_set:
            raise StreamRecError(f"{inter.where(row, column)}: {column} {value} is not in {source}")


def _first_genre(items: AtomicFile, row: int) -> str:
    names = items.columns["class"][row]
    for name in names:
        if name not in GENRES:
            raise StreamRecError(
                f"{items.where(row, 'class')}: genre {name!r} is not a MovieLens genre (one of {', '.join(GENRES)})"
            )
    return GENRES[names[0]] if names else "unknown"


def _year_start(items: AtomicFile, row: int) -> float:
    """Jan 1 (UTC) of the release year as Unix seconds; NaN where MovieLens has no year ('unknown', 'V')."""
    text = items.columns["release_year"][row]
    if not YEAR.match(text):
        return float("nan")
    year = int(text)
    if not 1870 <= year <= 2100:
        raise StreamRecError(f"{items.where(row, 'release_year')}: {year} is not a plausible release year")
    return datetime(year, 1, 1, tzinfo=UTC).timestamp()


def _age_band(users: AtomicFile, row: int) -> str:
    text = users.columns["age"][row]
    if text in ("", "unknown"):
        return "unknown"
    if not DIGITS.fullmatch(text) or not 0 < int(text) < 130:
        raise StreamRecError(f"{users.where(row, 'age')}: {text!r} is not an age in years")
    return next(band for limit, band in AGE_BANDS if int(text) < limit)


def _gender(users: AtomicFile, row: int) -> str:
    text = users.columns["gender"][row]
    if text.lower() not in GENDERS:
        raise StreamRecError(f"{users.where(row, 'gender')}: {text!r} is not M, F, X or empty")
    return GENDERS[text.lower()]


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64), type=pa.timestamp("us"))
