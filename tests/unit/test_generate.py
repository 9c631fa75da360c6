"""The synthetic generator: determinism, semantic invariants and the stored ground truth."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.raw_schema import PRIMARY_KEYS, RAW_TABLES
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, scalar
from streamrec.lab import generate as generate_module
from streamrec.lab.generate import generate
from streamrec.lab.truth import GroundTruth, load_truth

SMALL = {"users": 300, "items": 200, "days": 40, "seed": 1}
TRUTH_TABLES = ("user_latent", "item_latent", "params")


def digests(settings: Settings) -> dict[str, str]:
    """A content hash of every raw and truth table (rows in a canonical order)."""
    out = {}
    with connect(settings, read_only=True) as con:
        names = [("raw", t) for t in RAW_TABLES] + [("truth", t) for t in TRUTH_TABLES]
        for schema, table in names:
            rows = con.sql(f"select * from {schema}.{table} order by all").fetchall()
            out[f"{schema}.{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One small generated warehouse shared by the read-only tests of this module."""
    settings = Settings(home=tmp_path_factory.mktemp("gen") / "home").ensure()
    generate(settings, **SMALL)
    return settings


@pytest.fixture(scope="module")
def truth(small: Settings) -> GroundTruth:
    with connect(small, read_only=True) as con:
        return load_truth(con)


def query(settings: Settings, sql: str) -> list[tuple]:
    with connect(settings, read_only=True) as con:
        return fetchall(con, sql)


def test_same_seed_same_data_and_other_seed_differs(small: Settings, tmp_path: Path) -> None:
    again = Settings(home=tmp_path / "again").ensure()
    generate(again, **SMALL)
    assert digests(again) == digests(small)
    other = Settings(home=tmp_path / "other").ensure()
    generate(other, **{**SMALL, "seed": 2})
    changed = {name for name, digest in digests(other).items() if digests(small)[name] != digest}
    assert {"raw.interactions", "raw.users", "truth.user_latent"} <= changed


def test_regenerating_replaces_everything(small: Settings, settings: Settings) -> None:
    generate(settings, **{**SMALL, "seed": 5, "users": 50})
    generate(settings, **SMALL)
    assert digests(settings) == digests(small)


def test_keys_unique_and_references_resolve(small: Settings) -> None:
    for table, key in PRIMARY_KEYS.items():
        total, distinct = query(small, f"select count(*), count(distinct {key}) from raw.{table}")[0]
        assert total == distinct > 0, table
    orphans = query(
        small,
        "select count(*) from raw.interactions i "
        "left join raw.users u using (user_id) left join raw.items it using (item_id) "
        "left join raw.sessions s using (session_id) "
        "where u.user_id is null or it.item_id is null or s.session_id is null or s.user_id <> i.user_id",
    )[0][0]
    assert orphans == 0
    assert query(small, "select count(*) from raw.items i anti join raw.creators c using (creator_id)")[0][0] == 0


def test_no_event_before_publication_signup_or_outside_its_session(small: Settings) -> None:
    before_publish, before_signup, outside_session, item_before_creator = query(
        small,
        """
        select
            count(*) filter (where i.event_ts < it.published_ts),
            count(*) filter (where i.event_ts < u.signup_ts),
            count(*) filter (where i.event_ts < s.started_ts
                or i.event_ts > s.started_ts + to_microseconds(cast(s.duration_seconds * 1e6 as bigint))
                    + interval 1 second),
            (select count(*) from raw.items x join raw.creators c using (creator_id)
             where x.published_ts < c.created_ts)
        from raw.interactions i
        join raw.items it using (item_id)
        join raw.users u using (user_id)
        join raw.sessions s using (session_id)
        """,
    )[0]
    assert (before_publish, before_signup, outside_session, item_before_creator) == (0, 0, 0, 0)


def test_event_mix_and_columns_are_sane(small: Settings) -> None:
    counts = dict(query(small, "select event_type, count(*) from raw.interactions group by 1"))
    assert set(counts) == {"play", "complete", "like", "skip"}
    total = sum(counts.values())
    assert 0.2 < counts["play"] / total < 0.7
    assert 0.1 < counts["skip"] / total < 0.6
    assert 0.05 < counts["complete"] / counts["play"] < 0.6
    assert 0.02 < counts["like"] / counts["play"] < 0.5
    bad_watch, bad_rating, bad_position, organic_share = query(
        small,
        """
        select
            count(*) filter (where (event_type = 'play') <> (watch_seconds > 0) or watch_seconds > it.length_seconds),
            count(rating),
            count(*) filter (where position not between 1 and 10),
            avg(case when position is null then 1.0 else 0.0 end) filter (where event_type = 'play')
        from raw.interactions join raw.items it using (item_id)
        """,
    )[0]
    assert (bad_watch, bad_rating, bad_position) == (0, 0, 0)
    assert 0.03 < organic_share < 0.5


def test_codes_come_from_the_contract(small: Settings) -> None:
    contract = load_contract()
    languages = set(contract["user_language_code"].codes) - {"unknown"}
    assert {r[0] for r in query(small, "select distinct language_code from raw.users")} <= languages
    assert {r[0] for r in query(small, "select distinct language_code from raw.creators")} <= languages
    assert {r[0] for r in query(small, "select distinct age_band_code from raw.users")} <= set(
        contract["user_age_band_code"].codes
    )
    genres = {r[0] for r in query(small, "select distinct genre_code from raw.items")}
    assert genres <= set(contract["item_genre_code"].codes) - {"unknown"}
    assert len(genres) > 5
    assert {r[0] for r in query(small, "select distinct gender_code from raw.users")} <= {"f", "m", "x", "unknown"}


def test_new_users_creators_and_fresh_items_exist(small: Settings) -> None:
    # as_of as the feature warehouse defines it: midnight after the last raw event.
    new_users, new_creators, fresh_items, old_items = query(
        small,
        """
        with a as (select date_trunc('day', max(event_ts)) + interval 1 day as as_of from raw.interactions)
        select
            (select count(*) from raw.users, a where signup_ts > as_of - interval 30 day),
            (select count(*) from raw.creators, a where created_ts > as_of - interval 60 day),
            (select count(*) from raw.items, a where published_ts > as_of - interval 7 day),
            (select count(*) from raw.items, a where published_ts < as_of - interval 30 day)
        """,
    )[0]
    assert new_users > 0 and new_creators > 0 and fresh_items > 0
    assert old_items > fresh_items  # most of the catalogue predates the last month


def test_sessions_have_realistic_coherent_durations(small: Settings) -> None:
    median, longest, shorter_than_watch = query(
        small,
        """
        select median(duration_seconds), max(duration_seconds),
               count(*) filter (where duration_seconds + 0.5 < watched)
        from raw.sessions s
        join (select session_id, sum(watch_seconds) as watched from raw.interactions group by 1) w using (session_id)
        """,
    )[0]
    assert 5 * 60 <= median <= 60 * 60
    assert longest <= 7200
    assert shorter_than_watch == 0


def test_interaction_target_is_met_at_a_session_boundary(settings: Settings) -> None:
    generate(settings, users=100, items=80, days=20, seed=3, interactions=5000)
    count, longest_session = query(
        settings,
        "select (select count(*) from raw.interactions), "
        "(select max(c) from (select count(*) c from raw.interactions group by session_id))",
    )[0]
    assert 5000 <= count < 5000 + longest_session
    generate(settings, users=100, items=80, days=20, seed=3)  # default: 40 per user
    assert 4000 <= query(settings, "select count(*) from raw.interactions")[0][0] < 4000 + longest_session * 3


def test_truth_is_stored_with_zipf_popularity(small: Settings, truth: GroundTruth) -> None:
    d = int(truth.param("n_factors"))
    assert truth.user_factors.shape == (SMALL["users"], d)
    assert truth.item_factors.shape == (SMALL["items"], d)
    params = dict(query(small, "select name, value from truth.params"))
    assert params["seed"] == SMALL["seed"]
    # exp(popularity_logit) ~ rank^-s: a straight line of slope -s on a log-log plot.
    ordered = np.sort(truth.popularity_logit)[::-1]
    slope = np.polyfit(np.log(np.arange(1, ordered.size + 1)), ordered, 1)[0]
    assert slope == pytest.approx(-params["zipf_exponent"], rel=1e-6)


def test_stored_truth_is_the_model_the_generator_used(truth: GroundTruth) -> None:
    used = generate_module._make_entities(SMALL["users"], SMALL["items"], SMALL["days"], SMALL["seed"]).truth
    users = np.repeat(used.user_ids, 7)[: 3 * used.item_ids.size]
    items = np.resize(used.item_ids, users.size)
    positions = np.resize(np.array([np.nan, 1, 2, 5, 10]), users.size)
    np.testing.assert_array_equal(
        truth.engagement_probability(users, items, positions), used.engagement_probability(users, items, positions)
    )
    np.testing.assert_array_equal(truth.exposure_weights(), used.exposure_weights())


def test_engagement_probability_follows_position_and_language(truth: GroundTruth) -> None:
    users = np.repeat(truth.user_ids, truth.item_ids.size)
    items = np.tile(truth.item_ids, truth.user_ids.size)
    organic = truth.engagement_probability(users, items)
    same = truth.user_language[truth.user_rows(users)] == truth.item_language[truth.item_rows(items)]
    assert organic[same].mean() > organic[~same].mean() + 0.1
    by_position = np.array(
        [truth.engagement_probability(users[:500], items[:500], np.full(500, p)) for p in range(1, 11)]
    )
    assert np.all(np.diff(by_position, axis=0) < 0)  # each slot lower than the one above, pair by pair
    np.testing.assert_allclose(by_position[0], organic[:500])  # slot 1 is always examined, like a search
    with pytest.raises(StreamRecError, match="item_id 999999"):
        truth.engagement_probability(users[:1], np.array([999_999]))


def test_observed_events_reflect_the_truth(small: Settings, truth: GroundTruth) -> None:
    rows = query(
        small,
        "select user_id, item_id, event_type, position from raw.interactions where event_type in ('play', 'skip')",
    )
    users = np.array([r[0] for r in rows])
    items = np.array([r[1] for r in rows])
    played = np.array([r[2] == "play" for r in rows])
    position = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float)
    relevance = truth.relevance(users, items)
    assert relevance[played].mean() > relevance[~played].mean() + 0.05
    plays_at = np.bincount(position[played & ~np.isnan(position)].astype(int), minlength=11)
    assert plays_at[1] > plays_at[5] > plays_at[10]  # position bias: fewer plays further down the slate


@pytest.mark.parametrize("step", ["_write_truth", "_event_chunks"])  # truth (warehouse), then raw (its own file)
def test_failed_generate_changes_nothing(
    small: Settings, settings: Settings, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    generate(settings, **SMALL)
    before = digests(settings)

    def broken(*args: object, **kwargs: object) -> Iterator[object]:
        raise RuntimeError("disk full")
        yield  # a generator for _event_chunks; raises on the first row

    def broken_now(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(generate_module, step, broken if step == "_event_chunks" else broken_now)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(settings, **{**SMALL, "seed": 9})
    assert digests(settings) == before
    with connect(settings, read_only=True) as con:
        assert scalar(con, "select count(*) from raw.interactions") > 0
        assert not scalar(con, "select count(*) from information_schema.schemata where schema_name = 'truth_next'")


def test_bad_sizes_are_refused(settings: Settings) -> None:
    with pytest.raises(StreamRecError, match="at least one user"):
        generate(settings, users=0, items=10, days=10, seed=1)
    assert not settings.warehouse_path.exists()
