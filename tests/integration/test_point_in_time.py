"""Point in time: features equal a direct computation from raw over [as_of - N days, as_of), and a label's own
interaction (or anything later) never reaches the features it is trained with."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from streamrec.batch.build import build
from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse

pytestmark = pytest.mark.slow

SAMPLE_USERS = 25


def _con(home: Path) -> duckdb.DuckDBPyConnection:
    return open_warehouse(Settings(home=home), read_only=True)


def test_user_features_match_a_direct_computation_from_raw(built_home: Path) -> None:
    """Every snapshot of a sample of users, recomputed from raw with plain range predicates on event_ts."""
    con = _con(built_home)
    try:
        mismatches = con.sql(
            f"""
            with sample as (
                select user_id from features.user_features group by 1 order by hash(user_id) limit {SAMPLE_USERS}
            ),
            expected as (
                select
                    f.user_id,
                    f.as_of,
                    (select count(*) from raw.interactions i where i.user_id = f.user_id
                        and i.event_ts >= f.as_of - interval 30 day and i.event_ts < f.as_of) as interactions_30d,
                    (select count(*) from raw.interactions i where i.user_id = f.user_id
                        and i.event_ts >= f.as_of - interval 7 day and i.event_ts < f.as_of) as interactions_7d,
                    (select count(*) from raw.interactions i where i.user_id = f.user_id and i.event_type = 'play'
                        and i.event_ts >= f.as_of - interval 30 day and i.event_ts < f.as_of) as plays_30d,
                    (select count(distinct it.creator_id) from raw.interactions i join raw.items it using (item_id)
                        where i.user_id = f.user_id and i.event_type = 'play'
                        and i.event_ts >= f.as_of - interval 30 day and i.event_ts < f.as_of) as creators_30d,
                    (select coalesce(avg(s.duration_seconds), 0) from raw.sessions s where s.user_id = f.user_id
                        and s.started_ts >= f.as_of - interval 7 day and s.started_ts < f.as_of) as avg_session_7d,
                    (select coalesce(sum(i.watch_seconds), 0) / 3600 from raw.interactions i
                        where i.user_id = f.user_id
                        and i.event_ts >= f.as_of - interval 30 day and i.event_ts < f.as_of) as watch_hours_30d,
                    (select epoch(f.as_of) - epoch(max(i.event_ts)) from raw.interactions i
                        where i.user_id = f.user_id and i.event_ts < f.as_of) / 86400 as days_since_last
                from features.user_features f
                where f.user_id in (select user_id from sample)
            )
            select e.*, f.user_interaction_count_30d_count, f.user_interaction_count_7d_count,
                f.user_play_count_30d_count, f.user_distinct_creators_30d_count,
                f.user_avg_session_length_7d_seconds, f.user_watch_time_30d_hours,
                f.user_days_since_last_interaction_days
            from expected e join features.user_features f using (user_id, as_of)
            where e.interactions_30d != f.user_interaction_count_30d_count
                or e.interactions_7d != f.user_interaction_count_7d_count
                or e.plays_30d != f.user_play_count_30d_count
                or e.creators_30d != f.user_distinct_creators_30d_count
                or abs(e.avg_session_7d - f.user_avg_session_length_7d_seconds) > 1e-6
                or abs(e.watch_hours_30d - f.user_watch_time_30d_hours) > 1e-9
                or e.days_since_last is distinct from f.user_days_since_last_interaction_days
                    and abs(e.days_since_last - f.user_days_since_last_interaction_days) > 1e-6
            """
        ).fetchall()
        checked = con.sql(
            f"select count(*), sum(user_interaction_count_30d_count) from features.user_features "
            f"where user_id in (select user_id from features.user_features group by 1 order by hash(user_id) "
            f"limit {SAMPLE_USERS})"
        ).fetchall()[0]
    finally:
        con.close()
    assert checked[0] >= SAMPLE_USERS and checked[1] > 0, "the sample must hold snapshots with activity"
    assert mismatches == []


def test_item_features_match_a_direct_computation_from_raw(built_home: Path) -> None:
    con = _con(built_home)
    try:
        mismatches = con.sql(
            """
            with expected as (
                select
                    f.item_id,
                    f.as_of,
                    (select count(*) from raw.interactions i where i.item_id = f.item_id and i.event_type = 'play'
                        and i.event_ts >= f.as_of - interval 30 day and i.event_ts < f.as_of) as plays_30d,
                    (select count(distinct i.user_id) from raw.interactions i
                        where i.item_id = f.item_id and i.event_type = 'play'
                        and i.event_ts >= f.as_of - interval 30 day and i.event_ts < f.as_of) as viewers_30d,
                    (select count(*) from raw.items o where o.creator_id = f.creator_id
                        and o.published_ts < f.as_of) as catalog_size,
                    (select case
                        when min(it.published_ts) > f.as_of - interval 7 day then null
                        when count(*) filter (where i.event_type in ('play', 'skip')) = 0 then null
                        else count(*) filter (where i.event_type = 'play')
                            / count(*) filter (where i.event_type in ('play', 'skip')) end
                        from raw.items it left join raw.interactions i on i.item_id = it.item_id
                        and i.event_ts >= f.as_of - interval 7 day and i.event_ts < f.as_of
                        where it.item_id = f.item_id) as ctr_7d
                from features.item_features f
            )
            select e.*, f.item_play_count_30d_count, f.item_unique_viewers_30d_count,
                f.item_creator_catalog_size_count, f.item_ctr_7d_ratio
            from expected e join features.item_features f using (item_id, as_of)
            where e.plays_30d != f.item_play_count_30d_count
                or e.viewers_30d != f.item_unique_viewers_30d_count
                or e.catalog_size != f.item_creator_catalog_size_count
                or e.ctr_7d is distinct from f.item_ctr_7d_ratio and abs(e.ctr_7d - f.item_ctr_7d_ratio) > 1e-9
            limit 10
            """
        ).fetchall()
        young_with_ctr = con.sql(
            "select count(*) from features.item_features where item_age_days < 7 and item_ctr_7d_ratio is not null"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert mismatches == []
    assert young_with_ctr == 0


def test_training_row_counts_only_interactions_before_its_as_of(built_home: Path) -> None:
    """Pick a labelled interaction whose user was active that same day before it: neither it nor the
    earlier same-day events may be in the row's counts (they are after as_of = the day's midnight)."""
    con = _con(built_home)
    try:
        row = con.sql(
            """
            select t.interaction_id, t.user_id, t.event_ts, t.as_of,
                t.user_interaction_count_30d_count, t.user_interaction_count_7d_count
            from features.training_examples t
            where (select count(*) from raw.interactions i where i.user_id = t.user_id
                   and i.event_ts >= t.as_of and i.event_ts <= t.event_ts) >= 3
            order by t.interaction_id
            limit 1
            """
        ).fetchall()
        assert row, "the small data set should have a user with several interactions in one day"
        _, user_id, event_ts, as_of, count_30d, count_7d = row[0]
        before = con.execute(
            "select count(*) filter (where event_ts >= ? - interval 30 day), "
            "count(*) filter (where event_ts >= ? - interval 7 day) "
            "from raw.interactions where user_id = ? and event_ts < ?",
            [as_of, as_of, user_id, as_of],
        ).fetchall()[0]
        through_event = con.execute(
            "select count(*) from raw.interactions where user_id = ? and event_ts >= ? - interval 30 day "
            "and event_ts <= ?",
            [user_id, as_of, event_ts],
        ).fetchall()[0][0]
    finally:
        con.close()
    assert as_of <= event_ts < as_of + timedelta(days=1)
    assert (count_30d, count_7d) == before
    assert through_event > count_30d  # counting up to the event would have differed: the check can fail


def _approx_floats(row: tuple) -> tuple:
    """The row with floats wrapped in pytest.approx (1e-12 relative), other values compared exactly."""
    return tuple(pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for v in row)


def test_events_at_or_after_as_of_do_not_change_that_snapshot(built_home: Path, copy_home) -> None:
    """Add interactions exactly at an as_of and just after it, rebuild: that snapshot is unchanged, the next
    snapshot counts them."""
    settings = copy_home(built_home)
    con = open_warehouse(settings, write_raw=True)
    try:
        as_of, next_as_of = con.sql(
            "select as_of, as_of + interval 1 day from features.user_features "
            "group by 1 order by 1 desc limit 1 offset 3"
        ).fetchall()[0]
        user_id = con.sql(
            f"select user_id from features.user_features where as_of = '{as_of}' "
            "order by user_interaction_count_30d_count desc, user_id limit 1"
        ).fetchall()[0][0]
        snapshot_sql = "select * exclude (as_of) from features.user_features where user_id = ? and as_of = ?"
        counts_sql = (
            "select user_interaction_count_30d_count, user_play_count_30d_count from features.user_features "
            "where user_id = ? and as_of = ?"
        )
        before = con.execute(snapshot_sql, [user_id, as_of]).fetchall()
        next_before = con.execute(counts_sql, [user_id, next_as_of]).fetchall()[0]
        item_id, next_id = con.sql(
            "select min(item_id), (select max(interaction_id) + 1 from raw.interactions) from raw.items"
        ).fetchall()[0]
        for offset, seconds in enumerate((0, 60, 3600)):
            con.execute(
                "insert into raw.interactions values (?, null, ?, ?, ? + to_seconds(?), 'play', 30.0, 1, null)",
                [next_id + offset, user_id, item_id, as_of, seconds],
            )
    finally:
        con.close()
    build(settings, select="+user_features")
    con = _con(settings.home)
    try:
        after = con.execute(snapshot_sql, [user_id, as_of]).fetchall()
        next_after = con.execute(counts_sql, [user_id, next_as_of]).fetchall()[0]
    finally:
        con.close()
    # floats compare to 1e-12: DuckDB's parallel sums may add in another order between builds
    assert [_approx_floats(row) for row in after] == [_approx_floats(row) for row in before]
    assert next_after == (next_before[0] + 3, next_before[1] + 3)
