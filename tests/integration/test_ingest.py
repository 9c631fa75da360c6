"""`streamrec ingest`: logs → ops.impressions / ops.events, idempotent, consistent after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pytest

from streamrec.batch.ingest import ingest_logs
from streamrec.batch.migrate import init_db
from streamrec.core.errors import StreamRecError
from streamrec.core.eventlog import DurableLog, EventRecord, ImpressionRecord, read_segment, segment_paths
from streamrec.core.settings import Settings
from streamrec.core.warehouse import fetchall, scalar

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def impressions(request: str, count: int) -> list[ImpressionRecord]:
    """`count` positions of one response."""
    return [
        ImpressionRecord(
            request_id=request,
            position=p,
            served_at=T0,
            user_id=7,
            item_id=100 + p,
            policy="model",
            model_version="v1",
            creator_id=3,
            score=0.5,
            propensity=0.25,
            canary_phase="stable",
            latency_ms=4.2,
        )
        for p in range(count)
    ]


def event(event_id: str) -> EventRecord:
    """A play event answering request r0."""
    return EventRecord(
        event_id=event_id,
        request_id="r0",
        user_id=7,
        item_id=100,
        event_type="play",
        watch_seconds=31.5,
        event_ts=T0,
        received_at=T0 + timedelta(seconds=1),
    )


def counts(settings: Settings) -> tuple[int, int]:
    """Rows in ops.impressions and ops.events."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return scalar(con, "select count(*) from ops.impressions"), scalar(con, "select count(*) from ops.events")


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    """An empty warehouse at the newest migration."""
    init_db(settings)
    return settings


def test_ingest_twice_loads_once(migrated: Settings) -> None:
    with DurableLog(migrated.logs_dir, "impressions") as log:
        for r in range(5):
            log.append(impressions(f"r{r}", 4))
        log.append(impressions("r0", 4))  # a retried batch: same keys again
    with DurableLog(migrated.logs_dir, "events") as log:
        log.append([event("e1"), event("e2")])

    first = ingest_logs(migrated)
    assert "impressions: 20 new, 4 duplicates skipped, 0 torn lines skipped" in first
    assert "events: 2 new, 0 duplicates skipped" in first
    assert counts(migrated) == (20, 2)

    second = ingest_logs(migrated)
    assert "impressions: 0 new, 24 duplicates skipped" in second
    assert "events: 0 new, 2 duplicates skipped" in second
    assert counts(migrated) == (20, 2)

    with duckdb.connect(str(migrated.warehouse_path), read_only=True) as con:
        row = fetchall(con, "select * from ops.impressions where request_id = 'r3' and position = 2")
        assert row == [
            ("r3", 2, T0.replace(tzinfo=None), 7, 102, 3, 0.5, 0.25, "model", "v1", "stable", 4.2, None, None)
        ]
        row = fetchall(con, "select * from ops.events")[0]
        assert row == ("e1", "r0", 7, 100, "play", 31.5, T0.replace(tzinfo=None), datetime(2026, 11, 25, 12, 0, 1))
    assert all(path.exists() for path in segment_paths(migrated.logs_dir, "impressions"))  # logs are never deleted


def test_timestamps_with_offsets_are_stored_as_utc(migrated: Settings) -> None:
    plus_two = timezone(timedelta(hours=2))
    with DurableLog(migrated.logs_dir, "events") as log:
        log.append([{**_event_dict("aware"), "event_ts": datetime(2026, 11, 25, 14, 0, tzinfo=plus_two)}])
        log.append([{**_event_dict("naive"), "event_ts": datetime(2026, 11, 25, 12, 0)}])
    ingest_logs(migrated)
    with duckdb.connect(str(migrated.warehouse_path), read_only=True) as con:
        stored = fetchall(con, "select distinct event_ts from ops.events")
    assert stored == [(datetime(2026, 11, 25, 12, 0),)]


def _event_dict(event_id: str) -> dict:
    return {
        "event_id": event_id,
        "user_id": 1,
        "item_id": 2,
        "event_type": "like",
        "event_ts": T0,
        "received_at": T0,
    }


WRITER = """
import sys
from datetime import datetime, UTC
from pathlib import Path
from streamrec.core.eventlog import DurableLog, ImpressionRecord
log = DurableLog(Path(sys.argv[1]), "impressions")
for r in range(1_000_000):
    log.append([ImpressionRecord(request_id=f"k{r}", position=p, served_at=datetime.now(UTC), user_id=1,
                                 item_id=p, policy="model", model_version="v1") for p in range(10)])
    if r == 20:
        print("ready", flush=True)
"""


def test_ingest_after_kill_9_and_a_torn_tail_is_consistent(migrated: Settings) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(migrated.logs_dir)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    [segment] = segment_paths(migrated.logs_dir, "impressions")
    os.truncate(segment, segment.stat().st_size - 25)  # what a power cut mid-write leaves behind

    contents = read_segment(segment, ImpressionRecord)
    assert contents.torn_lines == 1
    complete = {(r.request_id, r.position) for r in contents.records}

    summary = ingest_logs(migrated)
    assert f"impressions: {len(complete)} new, 0 duplicates skipped, 1 torn lines skipped" in summary
    with duckdb.connect(str(migrated.warehouse_path), read_only=True) as con:
        stored = set(fetchall(con, "select request_id, position from ops.impressions"))
    assert stored == complete

    # A restarted API appends to a new segment; the next ingest adds only the new rows.
    with DurableLog(migrated.logs_dir, "impressions") as log:
        log.append(impressions("after-restart", 3))
    summary = ingest_logs(migrated)
    assert f"impressions: 3 new, {len(complete)} duplicates skipped, 1 torn lines skipped (2 segments)" in summary
    assert counts(migrated)[0] == len(complete) + 3


def test_invalid_record_stops_ingest_naming_the_segment_and_keeps_the_tables(migrated: Settings) -> None:
    with DurableLog(migrated.logs_dir, "events") as log:
        log.append([event("good")])
    ingest_logs(migrated)
    with DurableLog(migrated.logs_dir, "events") as log:
        log.append([event("good2"), {**_event_dict("bad"), "user_id": "not a number"}])
        segment = log.segment_path
    assert segment is not None
    with pytest.raises(StreamRecError, match=rf"{segment.name}.*event_id='bad'.*'user_id'"):
        ingest_logs(migrated)
    assert counts(migrated) == (0, 1)  # nothing from the failed run landed, not even the valid good2


def test_no_logs_and_no_tables(settings: Settings) -> None:
    assert "nothing to ingest" in ingest_logs(settings)
    with DurableLog(settings.logs_dir, "events") as log:
        log.append([event("e1")])
    with pytest.raises(StreamRecError, match=r"no warehouse at .*: run `streamrec init`"):
        ingest_logs(settings)
    assert not settings.warehouse_path.exists()
    with duckdb.connect(str(settings.warehouse_path)):
        pass  # a warehouse without the ops tables (never migrated)
    with pytest.raises(StreamRecError, match=r"no table ops\.impressions: run `streamrec init`"):
        ingest_logs(settings)
