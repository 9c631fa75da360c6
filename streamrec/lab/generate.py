"""Synthetic StreamRec data: users, creators, items, sessions and interactions from a hidden ground truth.

Everything is vectorised numpy and written in chunks (about a million interactions each) as
Arrow tables, so ten million interactions never exist as Python objects. One seed fixes every
draw: entity tables come from stream (seed, 0) and chunk k from stream (seed, 1, k), and the
end of the history is a fixed date, so the same arguments give byte-identical tables.

How behaviour is made (see streamrec/truth.py and docs/data.md): a session shows a run of
impressions, mostly slots 1..slate_size of a feed filled by a popularity logging policy and
some organic searches (position NULL). Each impression is examined with the position bias
and played with the relevance of the user-item pair; examined but unplayed slots are skips.
Plays watch a share of the item that grows with relevance; watching to the end adds a
'complete', and relevant plays sometimes add a 'like'.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamrec.batch.raw_load import insert_arrow, replace_raw
from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.event_types import INTERACTION_EVENT_TYPES
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, transaction
from streamrec.lab.truth import DEFAULT_PARAMS, TRUTH_TABLES_SQL, GroundTruth

# The history ends here (not at "now") so a seed reproduces the same data on any day.
END_TS = np.datetime64("2025-06-01T00:00:00", "s")
DAY = 86_400.0
YEAR = 365.0 * DAY
CHUNK_INTERACTIONS = 1_000_000
DEFAULT_INTERACTIONS_PER_USER = 40
SESSION_CAP_SECONDS = 7_200.0  # the contract's user_avg_session_length_7d_seconds maximum
NEW_CREATOR_DAYS = 60.0
NEW_CREATOR_SHARE = 0.2
NEW_USER_SHARE = 0.2
IN_WINDOW_ITEM_SHARE = 0.25  # items published during the history (the rest earlier)
RECENT_ITEM_SHARE = 0.03  # items published in the last 7 days (item_ctr_7d_ratio is null for them)
NEXT_TRUTH_SCHEMA = "truth_next"  # a new world's truth, written before raw is replaced and swapped in after

# Constants of the event model beyond truth.DEFAULT_PARAMS; stored in truth.params with them.
EVENT_PARAMS = {
    "mean_impressions_per_session": 12.0,
    "max_impressions_per_session": 60.0,
    "browse_seconds_examined": 8.0,  # mean extra seconds looking at an examined slot
    "browse_seconds_scrolled": 1.5,  # mean seconds scrolling past an unexamined slot
    "complete_base": 0.05,  # P(watch to the end | play) = complete_base + complete_slope * relevance
    "complete_slope": 0.45,
    "watch_beta_a0": 0.6,  # otherwise the watched share is 0.95 * Beta(a0 + a1 * relevance, b)
    "watch_beta_a1": 2.0,
    "watch_beta_b": 1.5,
    "like_scale": 0.45,  # P(like | play) = like_scale * relevance ** 2
    "session_cap_seconds": SESSION_CAP_SECONDS,
}

LANGUAGE_WEIGHTS = {"en": 0.40, "es": 0.14, "pt": 0.10, "hi": 0.10, "fr": 0.08, "de": 0.07, "ja": 0.06, "ko": 0.05}
COUNTRIES = {  # ISO 3166-1 alpha-2 (upper case) by user language
    "en": (["US", "GB", "CA", "AU", "IN"], [0.55, 0.15, 0.1, 0.1, 0.1]),
    "es": (["ES", "MX", "AR", "CO", "US"], [0.3, 0.3, 0.15, 0.15, 0.1]),
    "pt": (["BR", "PT"], [0.8, 0.2]),
    "hi": (["IN"], [1.0]),
    "fr": (["FR", "CA", "BE"], [0.75, 0.15, 0.1]),
    "de": (["DE", "AT", "CH"], [0.8, 0.1, 0.1]),
    "ja": (["JP"], [1.0]),
    "ko": (["KR"], [1.0]),
}
AGE_BAND_WEIGHTS = {"<18": 0.06, "18-24": 0.2, "25-34": 0.28, "35-44": 0.2, "45-54": 0.12, "55+": 0.1, "unknown": 0.04}
GENDER_WEIGHTS = {"f": 0.48, "m": 0.47, "x": 0.02, "unknown": 0.03}
DEVICES = ("tv", "mobile", "web", "tablet")
EVENT_CODES = INTERACTION_EVENT_TYPES  # the generator's event kinds index into this tuple
# Sessions start more often in the evening (weight per UTC hour).
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 5, 4, 4, 4, 5, 6, 8, 10, 10, 9, 6, 4], dtype=float)
_ADJECTIVES = "Quiet Silent Golden Hidden Last Broken Wild Electric Midnight Crimson Lost Endless Northern Paper"
_NOUNS = "Harbor Signal Garden River Empire Machine Summer Kingdom Letter Voyage Horizon Station Forest Mirror Echo"
TITLE_ADJECTIVES = np.array(_ADJECTIVES.split(" "))
TITLE_NOUNS = np.array(_NOUNS.split(" "))


@dataclass
class _Entities:
    """Users, creators and items as numpy columns, plus the ground truth built from them."""

    start: float  # seconds since epoch when the history begins
    end: float
    user_signup: np.ndarray
    pick_user: _Sampler  # which user a session belongs to (activity x share of the history after signup)
    pick_item: _Sampler  # what the logging policy shows (truth.exposure_weights)
    pick_hour: _Sampler  # UTC hour a session starts in
    user_device: np.ndarray
    item_published: np.ndarray
    item_length: np.ndarray
    old_items: np.ndarray  # items published before the history starts (always valid to show)
    truth: GroundTruth
    tables: dict[str, pa.Table]


def generate(
    settings: Settings,
    users: int,
    items: int,
    days: int,
    seed: int,
    interactions: int | None = None,
) -> str:
    """Replace the raw schema (and truth schema) with synthetic data; return a one-line summary.

    `interactions` is a target: generation stops at the first session boundary that reaches it
    (default: about 40 per user). A failure leaves the previous raw and truth untouched: raw is replaced in
    one transaction, and the new truth, written beforehand, replaces the old only after that commit.
    """
    if users < 1 or items < 1:
        raise StreamRecError(f"need at least one user and one item (got users={users}, items={items})")
    if days < 1:
        raise StreamRecError(f"days must be at least 1 (got {days})")
    target = DEFAULT_INTERACTIONS_PER_USER * users if interactions is None else interactions
    if target < 1:
        raise StreamRecError(f"interactions must be at least 1 (got {interactions})")
    began = time.perf_counter()
    entities = _make_entities(users, items, days, seed)
    n_sessions = n_interactions = 0
    # Truth is in the warehouse and raw in its own file (ADR 0008), one transaction each: the new truth is
    # written beside the old first, raw is replaced, then the new truth replaces the old in one transaction.
    # A failure before the last step leaves the old raw and the old truth.
    with connect(settings) as con, transaction(con):
        _write_truth(con, entities, seed, days, schema=NEXT_TRUTH_SCHEMA)
    try:
        with replace_raw(settings) as con:
            for table in ("users", "creators", "items"):
                insert_arrow(con, f"raw.{table}", entities.tables[table])
            with _progress(target) as advance:
                for sessions, events in _event_chunks(entities, target, seed):
                    insert_arrow(con, "raw.sessions", sessions)
                    insert_arrow(con, "raw.interactions", events)
                    n_sessions += sessions.num_rows
                    n_interactions += events.num_rows
                    advance(events.num_rows)
    except BaseException:
        with connect(settings) as con:
            con.execute(f"drop schema if exists {NEXT_TRUTH_SCHEMA} cascade")
        raise
    with connect(settings) as con, transaction(con):
        _replace_truth(con)
    n_creators = entities.tables["creators"].num_rows
    return (
        f"generated {users:,} users, {n_creators:,} creators, {items:,} items, {n_sessions:,} sessions and "
        f"{n_interactions:,} interactions over {days} days ending {END_TS} (seed {seed}) "
        f"in {time.perf_counter() - began:.1f} s"
    )


# ---- entities ---------------------------------------------------------------------------------------


@dataclass
class _World:
    """What every part of the synthetic world is drawn against: the time window, the code lists, the RNG."""

    rng: np.random.Generator
    start: float
    end: float
    spoken: list[str]  # the languages the generator draws (a subset of the contract's)
    languages: tuple[str, ...]  # the contract's language codes
    genres: list[str]
    n_factors: int
    scale: float  # so <x_u, y_i> has unit variance


@dataclass
class _Creators:
    language: np.ndarray  # index into _World.spoken
    created: np.ndarray  # seconds since epoch
    genre: np.ndarray
    weight: np.ndarray  # share of the catalogue beyond one item each


@dataclass
class _Items:
    creator: np.ndarray  # creator row of each item
    published: np.ndarray
    genre: np.ndarray
    length: np.ndarray
    titles: np.ndarray
    popularity_logit: np.ndarray
    factors: np.ndarray


@dataclass
class _Users:
    signup: np.ndarray
    language: np.ndarray  # index into _World.spoken
    country: np.ndarray
    age_band: np.ndarray
    gender: np.ndarray
    factors: np.ndarray
    weight: np.ndarray  # activity x share of the history after signup
    device: np.ndarray


def _make_world(days: int, seed: int) -> _World:
    contract = load_contract()
    languages = tuple(contract["user_language_code"].codes)
    spoken = list(LANGUAGE_WEIGHTS)
    # The generator's code lists must stay inside the contract's, or features would break it.
    assert set(spoken) <= set(languages) and set(AGE_BAND_WEIGHTS) <= set(contract["user_age_band_code"].codes)
    end = float(END_TS.astype(np.int64))
    d = int(DEFAULT_PARAMS["n_factors"])
    return _World(
        rng=np.random.default_rng([seed, 0]),
        start=end - days * DAY,
        end=end,
        spoken=spoken,
        languages=languages,
        genres=[g for g in contract["item_genre_code"].codes if g != "unknown"],
        n_factors=d,
        scale=d**-0.25,
    )


def _make_creators(world: _World, n_items: int) -> _Creators:
    """Most creators joined long before the history, some in the last NEW_CREATOR_DAYS days."""
    rng, end = world.rng, world.end
    n_creators = max(1, min(n_items, math.ceil(n_items / 8)))
    language = rng.choice(len(world.spoken), size=n_creators, p=_probs(LANGUAGE_WEIGHTS))
    new = rng.random(n_creators) < NEW_CREATOR_SHARE
    new[0] = False  # creator 0 owns item 0, which must predate the history
    created = np.where(
        new,
        end - DAY - rng.random(n_creators) * (NEW_CREATOR_DAYS - 1) * DAY,
        world.start - rng.random(n_creators) * 2 * YEAR,
    )
    genre = rng.integers(0, len(world.genres), size=n_creators)
    weight = rng.lognormal(0.0, 1.0, size=n_creators)
    return _Creators(language=language, created=created, genre=genre, weight=weight)


def _make_items(world: _World, creators: _Creators, n_items: int) -> _Items:
    """Every creator gets at least one item, the rest go to creators in proportion to a weight."""
    rng, start, end = world.rng, world.start, world.end
    n_creators = creators.language.size
    item_creator = np.empty(n_items, dtype=np.int64)
    item_creator[:n_creators] = np.arange(n_creators)
    creator_share = creators.weight / creators.weight.sum()
    item_creator[n_creators:] = rng.choice(n_creators, size=n_items - n_creators, p=creator_share)
    lo = creators.created[item_creator]
    in_window = rng.random(n_items) < IN_WINDOW_ITEM_SHARE
    recent = rng.random(n_items) < RECENT_ITEM_SHARE
    in_window[0] = recent[0] = False
    u = rng.random(n_items)
    published = np.where(
        in_window,
        np.maximum(lo, start) + u * (end - 3600.0 - np.maximum(lo, start)),
        lo + u * (np.maximum(lo, start) - lo),
    )
    recent_lo = np.maximum(lo, end - 7 * DAY)
    published = np.where(recent, recent_lo + u * (end - 3600.0 - recent_lo), published)
    n_genres = len(world.genres)
    genre = np.where(rng.random(n_items) < 0.7, creators.genre[item_creator], rng.integers(0, n_genres, n_items))
    length = np.round(np.clip(rng.lognormal(np.log(420.0), 0.9, size=n_items), 30.0, 5400.0))
    titles = np.char.add(
        np.char.add(TITLE_ADJECTIVES[rng.integers(0, TITLE_ADJECTIVES.size, n_items)], " "),
        TITLE_NOUNS[rng.integers(0, TITLE_NOUNS.size, n_items)],
    )
    # Zipf popularity over a random ranking; items of a genre share a direction in latent space.
    rank = rng.permutation(n_items) + 1.0
    popularity_logit = -DEFAULT_PARAMS["zipf_exponent"] * np.log(rank)
    popularity_logit -= popularity_logit.mean()
    genre_centres = rng.standard_normal((n_genres, world.n_factors))
    factors = world.scale * (0.6 * genre_centres[genre] + 0.8 * rng.standard_normal((n_items, world.n_factors)))
    return _Items(item_creator, published, genre, length, titles, popularity_logit, factors)


def _make_users(world: _World, n_users: int) -> _Users:
    """Most users signed up before the history, some during it (so some are new at every as_of)."""
    rng, start, end = world.rng, world.start, world.end
    user_new = rng.random(n_users) < NEW_USER_SHARE
    signup = np.where(
        user_new,
        start + rng.random(n_users) * max(end - DAY - start, 0.0),
        start - rng.random(n_users) * 3 * YEAR,
    )
    language = rng.choice(len(world.spoken), size=n_users, p=_probs(LANGUAGE_WEIGHTS))
    country = np.empty(n_users, dtype=object)
    for index, code in enumerate(world.spoken):
        mask = language == index
        options, weights = COUNTRIES[code]
        country[mask] = np.array(options, dtype=object)[rng.choice(len(options), size=int(mask.sum()), p=weights)]
    age_band = np.array(list(AGE_BAND_WEIGHTS))[rng.choice(len(AGE_BAND_WEIGHTS), n_users, p=_probs(AGE_BAND_WEIGHTS))]
    gender = np.array(list(GENDER_WEIGHTS))[rng.choice(len(GENDER_WEIGHTS), n_users, p=_probs(GENDER_WEIGHTS))]
    factors = world.scale * rng.standard_normal((n_users, world.n_factors))
    activity = rng.lognormal(0.0, 0.8, size=n_users)
    active_share = (end - np.maximum(signup, start)) / (end - start)
    device = rng.integers(0, len(DEVICES), size=n_users)
    return _Users(signup, language, country, age_band, gender, factors, activity * active_share, device)


def _entity_tables(world: _World, creators: _Creators, items: _Items, users: _Users) -> dict[str, pa.Table]:
    """The raw users, creators and items tables (ids are 1-based row numbers)."""
    user_ids = np.arange(1, users.signup.size + 1, dtype=np.int64)
    creator_ids = np.arange(1, creators.language.size + 1, dtype=np.int64)
    return {
        "users": pa.table(
            {
                "user_id": user_ids,
                "signup_ts": _timestamps(users.signup),
                "language_code": _dictionary(users.language, world.spoken),
                "country_code": pa.array(users.country, type=pa.string()),
                "age_band_code": pa.array(users.age_band),
                "gender_code": pa.array(users.gender),
            }
        ),
        "creators": pa.table(
            {
                "creator_id": creator_ids,
                "language_code": _dictionary(creators.language, world.spoken),
                "created_ts": _timestamps(creators.created),
            }
        ),
        "items": pa.table(
            {
                "item_id": np.arange(1, items.creator.size + 1, dtype=np.int64),
                "creator_id": creator_ids[items.creator],
                "title": pa.array(items.titles),
                "genre_code": _dictionary(items.genre, world.genres),
                "length_seconds": items.length,
                "published_ts": _timestamps(items.published),
            }
        ),
    }


def _make_entities(n_users: int, n_items: int, days: int, seed: int) -> _Entities:
    """Creators, items and users (drawn in that order from one RNG), their tables and the ground truth."""
    world = _make_world(days, seed)
    creators = _make_creators(world, n_items)
    items = _make_items(world, creators, n_items)
    users = _make_users(world, n_users)
    language_index = np.array([world.languages.index(code) for code in world.spoken], dtype=np.int16)
    truth = GroundTruth(
        user_ids=np.arange(1, n_users + 1, dtype=np.int64),
        user_factors=users.factors,
        user_language=language_index[users.language],
        item_ids=np.arange(1, n_items + 1, dtype=np.int64),
        item_factors=items.factors,
        popularity_logit=items.popularity_logit,
        item_language=language_index[creators.language[items.creator]],
        languages=world.languages,
        params=dict(DEFAULT_PARAMS),
    )
    return _Entities(
        start=world.start,
        end=world.end,
        user_signup=users.signup,
        pick_user=_Sampler(users.weight),
        pick_item=_Sampler(truth.exposure_weights()),
        pick_hour=_Sampler(HOUR_WEIGHTS),
        user_device=users.device,
        item_published=items.published,
        item_length=items.length,
        old_items=np.flatnonzero(items.published <= world.start),
        truth=truth,
        tables=_entity_tables(world, creators, items, users),
    )


# ---- sessions and events ------------------------------------------------------------------------------


def _event_chunks(entities: _Entities, target: int, seed: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield (sessions, interactions) Arrow tables of about CHUNK_INTERACTIONS rows until `target` is reached."""
    produced = sessions_made = 0
    events_per_session = 7.0  # first guess; refined from each chunk so later chunks land near their size
    chunk = 0
    while produced < target:
        want = min(CHUNK_INTERACTIONS, target - produced)
        n_sessions = max(1, math.ceil(want / events_per_session * 1.05))
        sessions, events = _simulate_chunk(entities, np.random.default_rng([seed, 1, chunk]), n_sessions)
        counts = np.bincount(events["session"], minlength=n_sessions)
        # Stop at the first session boundary that reaches the target (whole sessions stay coherent).
        keep_sessions = int(np.searchsorted(np.cumsum(counts), target - produced, side="left")) + 1
        keep_sessions = min(keep_sessions, n_sessions)
        keep_events = int(counts[:keep_sessions].sum())
        yield (
            _session_table(sessions, keep_sessions, sessions_made),
            _event_table(events, keep_events, produced, sessions_made),
        )
        events_per_session = max(0.5, counts.mean()) if counts.size else events_per_session
        produced += keep_events
        sessions_made += keep_sessions
        chunk += 1


@dataclass
class _Sessions:
    user: np.ndarray  # user row of each session
    started: np.ndarray  # seconds since epoch
    device: np.ndarray
    n_shown: np.ndarray  # impressions in each session


@dataclass
class _Impressions:
    session: np.ndarray  # session row of each impression
    first: np.ndarray  # index of each session's first impression
    position: np.ndarray  # 1-based slot, NaN for organic (searched) plays
    organic: np.ndarray
    item: np.ndarray  # item row
    started: np.ndarray  # its session's start


@dataclass
class _Behaviour:
    user_ids: np.ndarray
    item_ids: np.ndarray
    play: np.ndarray
    skip: np.ndarray
    like: np.ndarray
    share: np.ndarray  # share of the item watched when played
    watch: np.ndarray  # seconds
    browse: np.ndarray  # seconds spent on the slot before the watch
    length: np.ndarray


def _draw_sessions(entities: _Entities, rng: np.random.Generator, n_sessions: int) -> _Sessions:
    """Who, when (evening-heavy, after signup, ending before the history does), on what device."""
    params = EVENT_PARAMS
    user = entities.pick_user(rng, n_sessions)
    lo = np.maximum(entities.user_signup[user], entities.start)
    hi = entities.end - SESSION_CAP_SECONDS
    uniform_start = lo + rng.random(n_sessions) * np.maximum(hi - lo, 0.0)
    day_start = np.floor(uniform_start / DAY) * DAY
    diurnal = day_start + entities.pick_hour(rng, n_sessions) * 3600.0
    diurnal += rng.random(n_sessions) * 3600.0
    started = np.where((diurnal >= lo) & (diurnal <= hi), diurnal, uniform_start)
    other_device = rng.integers(0, len(DEVICES), n_sessions)
    device = np.where(rng.random(n_sessions) < 0.75, entities.user_device[user], other_device)
    n_shown = np.minimum(
        rng.geometric(1.0 / params["mean_impressions_per_session"], n_sessions),
        int(params["max_impressions_per_session"]),
    )
    return _Sessions(user=user, started=started, device=device, n_shown=n_shown)


def _draw_impressions(entities: _Entities, rng: np.random.Generator, sessions: _Sessions) -> _Impressions:
    """Slot = order within the session modulo the slate size; some plays are organic searches."""
    truth = entities.truth
    n_shown = sessions.n_shown
    session = np.repeat(np.arange(n_shown.size), n_shown)
    first = np.cumsum(n_shown) - n_shown
    order = np.arange(session.size) - first[session]
    organic = rng.random(session.size) < truth.param("organic_share")
    position = np.where(organic, np.nan, order % int(truth.param("slate_size")) + 1.0)
    item = entities.pick_item(rng, session.size)
    session_started = sessions.started[session]
    for _ in range(4):  # redraw items not yet published when the session started
        bad = np.flatnonzero(entities.item_published[item] > session_started)
        if bad.size == 0:
            break
        item[bad] = entities.pick_item(rng, bad.size)
    bad = np.flatnonzero(entities.item_published[item] > session_started)
    item[bad] = entities.old_items[rng.integers(0, entities.old_items.size, bad.size)]
    return _Impressions(session, first, position, organic, item, session_started)


def _behave(entities: _Entities, rng: np.random.Generator, sessions: _Sessions, shown: _Impressions) -> _Behaviour:
    """Behaviour from the ground truth: examine (position bias), then play with the pair's relevance."""
    truth, params = entities.truth, EVENT_PARAMS
    n = shown.session.size
    user_ids = truth.user_ids[sessions.user[shown.session]]
    item_ids = truth.item_ids[shown.item]
    p_play = truth.engagement_probability(user_ids, item_ids, shown.position)
    examined_p = truth.examination_probability(shown.position, n)
    relevance = p_play / examined_p
    draw = rng.random(n)
    play = draw < p_play
    skip = ~play & ~shown.organic & (draw < examined_p)
    length = entities.item_length[shown.item]
    finish = rng.random(n) < params["complete_base"] + params["complete_slope"] * relevance
    partial = 0.95 * rng.beta(params["watch_beta_a0"] + params["watch_beta_a1"] * relevance, params["watch_beta_b"])
    share = np.where(finish, 1.0, partial)
    watch = np.where(play, np.round(share * length), 0.0)
    like = play & (rng.random(n) < params["like_scale"] * relevance**2)
    browse = np.where(
        play | skip | shown.organic,
        rng.exponential(params["browse_seconds_examined"], n) + 2.0,
        rng.exponential(params["browse_seconds_scrolled"], n),
    ).round(1)
    return _Behaviour(user_ids, item_ids, play, skip, like, share, watch, browse, length)


def _simulate_chunk(entities: _Entities, rng: np.random.Generator, n_sessions: int) -> tuple[dict, dict]:
    """One chunk of sessions and their events, drawn in order: sessions, impressions, behaviour."""
    sessions = _draw_sessions(entities, rng, n_sessions)
    shown = _draw_impressions(entities, rng, sessions)
    b = _behave(entities, rng, sessions, shown)
    session, first = shown.session, shown.first

    # Lay impressions end to end inside each session; stop at the session cap and trim the last watch.
    spent = b.browse + b.watch
    total = np.cumsum(spent)
    offset = total - spent - (total - spent)[first][session]
    kept = offset + b.browse < SESSION_CAP_SECONDS
    watch = np.where(kept, np.minimum(b.watch, SESSION_CAP_SECONDS - offset - b.browse), 0.0)
    play, skip, like = b.play & kept, b.skip & kept, b.like & kept
    complete = play & (b.share >= 1.0) & (watch >= b.length)
    duration = np.bincount(session, weights=np.where(kept, b.browse + watch, 0.0), minlength=n_sessions)

    at = shown.started + offset + b.browse
    kinds = [(play, 0, at), (complete, 1, at + watch), (like, 2, at + watch), (skip, 3, at)]
    index = np.concatenate([np.flatnonzero(mask) for mask, _, _ in kinds])
    kind = np.concatenate([np.full(int(mask.sum()), code, dtype=np.int8) for mask, code, _ in kinds])
    ts = np.concatenate([times[mask] for mask, _, times in kinds])
    ordering = np.lexsort((kind, index))  # session by session, in time order within a session
    index, kind, ts = index[ordering], kind[ordering], ts[ordering]
    session_columns = {
        "user": sessions.user,
        "started": sessions.started,
        "duration": np.round(duration, 1),
        "device": sessions.device,
    }
    events = {
        "session": session[index],
        "user_id": b.user_ids[index],
        "item_id": b.item_ids[index],
        "ts": ts,
        "kind": kind,
        "watch": np.where(kind == 0, watch[index], 0.0),
        "position": shown.position[index],
    }
    return session_columns, events


def _session_table(sessions: dict, keep: int, id_base: int) -> pa.Table:
    return pa.table(
        {
            "session_id": np.arange(id_base + 1, id_base + keep + 1, dtype=np.int64),
            "user_id": sessions["user"][:keep] + 1,
            "started_ts": _timestamps(sessions["started"][:keep]),
            "duration_seconds": sessions["duration"][:keep],
            "device_code": _dictionary(sessions["device"][:keep], DEVICES),
        }
    )


def _event_table(events: dict, keep: int, id_base: int, session_base: int) -> pa.Table:
    position = events["position"][:keep]
    organic = np.isnan(position)
    return pa.table(
        {
            "interaction_id": np.arange(id_base + 1, id_base + keep + 1, dtype=np.int64),
            "session_id": events["session"][:keep].astype(np.int64) + session_base + 1,
            "user_id": events["user_id"][:keep],
            "item_id": events["item_id"][:keep],
            "event_ts": _timestamps(events["ts"][:keep]),
            "event_type": _dictionary(events["kind"][:keep], EVENT_CODES),
            "watch_seconds": events["watch"][:keep],
            "position": pa.array(np.where(organic, 0, position).astype(np.int32), mask=organic),
            "rating": pa.nulls(keep, pa.float64()),
        }
    )


# ---- truth ------------------------------------------------------------------------------------------------


def _create_truth_tables(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    con.execute(f"drop schema if exists {schema} cascade")
    con.execute(f"create schema {schema}")
    for sql in TRUTH_TABLES_SQL.values():
        con.execute(sql.replace("create table truth.", f"create table {schema}.", 1))


def _replace_truth(con: duckdb.DuckDBPyConnection) -> None:
    """Replace schema truth by the tables written into NEXT_TRUTH_SCHEMA (DuckDB cannot rename a schema)."""
    _create_truth_tables(con, "truth")
    for table in TRUTH_TABLES_SQL:
        con.execute(f"insert into truth.{table} from {NEXT_TRUTH_SCHEMA}.{table}")
    con.execute(f"drop schema {NEXT_TRUTH_SCHEMA} cascade")


def _write_truth(con: duckdb.DuckDBPyConnection, entities: _Entities, seed: int, days: int, schema: str) -> None:
    truth = entities.truth
    _create_truth_tables(con, schema)
    insert_arrow(
        con, f"{schema}.user_latent", pa.table({"user_id": truth.user_ids, "factors": _lists(truth.user_factors)})
    )
    insert_arrow(
        con,
        f"{schema}.item_latent",
        pa.table(
            {
                "item_id": truth.item_ids,
                "factors": _lists(truth.item_factors),
                "popularity_logit": truth.popularity_logit,
            }
        ),
    )
    slate = int(truth.param("slate_size"))
    examination = truth.examination_probability(np.arange(1, slate + 1, dtype=float), slate)
    params = {
        **truth.params,
        **EVENT_PARAMS,
        "seed": seed,
        "days": days,
        "end_ts_epoch_seconds": entities.end,
        **{f"examination_p{p}": float(examination[p - 1]) for p in range(1, slate + 1)},
    }
    insert_arrow(
        con,
        f"{schema}.params",
        pa.table({"name": list(params), "value": np.array(list(params.values()), dtype=np.float64)}),
    )


# ---- helpers ------------------------------------------------------------------------------------------------


def _probs(weights: dict[str, float]) -> np.ndarray:
    values = np.array(list(weights.values()), dtype=float)
    return values / values.sum()


class _Sampler:
    """Draws indices with fixed probabilities in O(1) each (Walker's alias method, Vose's construction).

    The feed draws tens of millions of items from a 50k-item Zipf law; a CDF search per draw
    was the slowest step of generation, the alias table makes it two array lookups.
    """

    def __init__(self, probabilities: np.ndarray) -> None:
        n = probabilities.size
        scaled = np.asarray(probabilities, dtype=np.float64) * (n / probabilities.sum())
        self.accept = np.ones(n)
        self.alias = np.arange(n)
        small = [int(i) for i in np.flatnonzero(scaled < 1.0)]
        large = [int(i) for i in np.flatnonzero(scaled >= 1.0)]
        while small and large:
            low, high = small.pop(), large.pop()
            self.accept[low] = scaled[low]
            self.alias[low] = high
            scaled[high] -= 1.0 - scaled[low]
            (small if scaled[high] < 1.0 else large).append(high)
        # Whatever is left is 1 up to rounding: always accept it (accept/alias keep their defaults).

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` indices drawn independently with the sampler's probabilities."""
        column = rng.integers(0, self.accept.size, size)
        return np.where(rng.random(size) < self.accept[column], column, self.alias[column])


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.round(np.asarray(seconds) * 1e6).astype(np.int64), type=pa.timestamp("us"))


def _dictionary(codes: np.ndarray, vocabulary: Sequence[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes).astype(np.int32)), pa.array(list(vocabulary)))


def _lists(matrix: np.ndarray) -> pa.Array:
    n, d = matrix.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), pa.array(matrix.ravel()))


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar for long runs (more than one chunk); a no-op otherwise."""
    if total <= CHUNK_INTERACTIONS:
        yield lambda _rows: None
        return
    columns = (TextColumn("generating interactions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("generate", total=total)
        yield lambda rows: bar.advance(task, rows)
