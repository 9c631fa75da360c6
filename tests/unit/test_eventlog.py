"""The durable JSON-lines log: batches read back whole, torn tails are skipped, concurrent appends lose nothing."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from streamrec.core.errors import StreamRecError
from streamrec.core.eventlog import (
    DurableLog,
    EventRecord,
    ImpressionRecord,
    read_segment,
    read_stream,
    segment_paths,
)


def impressions(request: str, count: int) -> list[ImpressionRecord]:
    """`count` positions of one response."""
    return [
        ImpressionRecord(
            request_id=request,
            position=position,
            served_at=datetime(2026, 11, 25, 12, 0, position, tzinfo=UTC),
            user_id=42,
            item_id=1000 + position,
            policy="model",
            model_version="v1",
            score=1.0 / (position + 1),
        )
        for position in range(count)
    ]


def test_append_reads_back_every_record_in_order(tmp_path: Path) -> None:
    batch_a, batch_b = impressions("a", 3), impressions("b", 2)
    with DurableLog(tmp_path, "impressions") as log:
        log.append(batch_a)
        log.append(batch_b)
        log.append([])  # an empty batch is a no-op
        segment = log.segment_path
    assert segment is not None
    assert segment.parent == tmp_path / "impressions"
    assert segment.name.startswith("impressions-") and segment.name.endswith(f"-{os.getpid()}.jsonl")
    assert list(read_stream(tmp_path, "impressions", ImpressionRecord)) == batch_a + batch_b
    assert read_segment(segment).torn_lines == 0


def test_dicts_are_accepted_and_decoded_as_dicts(tmp_path: Path) -> None:
    record = {"event_id": "e1", "user_id": 1, "item_id": 2, "event_type": "play", "watch_seconds": 12.5}
    with DurableLog(tmp_path, "events") as log:
        log.append([record])
    assert list(read_stream(tmp_path, "events")) == [record]


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    with DurableLog(tmp_path, "impressions") as log:
        log.append(impressions("a", 4))
        segment = log.segment_path
    assert segment is not None
    size = segment.stat().st_size
    os.truncate(segment, size - 7)  # a crash in the middle of writing the last record
    contents = read_segment(segment, ImpressionRecord)
    assert contents.torn_lines == 1
    assert contents.records == impressions("a", 3)


def test_corrupt_line_before_the_last_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "impressions" / "impressions-20261125T000000000000Z-1.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"request_id": "a"}\n{"request_id": \n{"request_id": "c"}\n')
    with pytest.raises(StreamRecError, match=r"impressions-20261125T000000000000Z-1\.jsonl:2: corrupt"):
        read_segment(path)


def test_segments_rotate_by_size_and_keep_every_record(tmp_path: Path) -> None:
    batches = [impressions(f"r{i}", 5) for i in range(20)]
    with DurableLog(tmp_path, "impressions", max_segment_bytes=4096) as log:
        for batch in batches:
            log.append(batch)
        assert log.stats.segments > 1
    paths = segment_paths(tmp_path, "impressions")
    assert len(paths) == log.stats.segments
    # A batch never straddles two segments, and no segment grows past the limit (each batch is ~1 KiB here).
    assert all(path.stat().st_size <= 4096 for path in paths)
    assert list(read_stream(tmp_path, "impressions", ImpressionRecord)) == [r for b in batches for r in b]


def test_concurrent_appends_from_threads_lose_nothing(tmp_path: Path) -> None:
    threads, batches_per_thread, batch_size = 8, 50, 4
    log = DurableLog(tmp_path, "events")
    errors: list[BaseException] = []

    def worker(thread: int) -> None:
        try:
            for batch in range(batches_per_thread):
                log.append(
                    EventRecord(
                        event_id=f"{thread}-{batch}-{i}",
                        user_id=thread,
                        item_id=i,
                        event_type="play",
                        event_ts=datetime(2026, 11, 25, tzinfo=UTC),
                        received_at=datetime(2026, 11, 25, tzinfo=UTC),
                    )
                    for i in range(batch_size)
                )
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    log.close()
    assert errors == []
    ids = [record.event_id for record in read_stream(tmp_path, "events", EventRecord)]
    expected = threads * batches_per_thread * batch_size
    assert len(ids) == len(set(ids)) == expected
    assert log.stats.records == expected and log.stats.batches == threads * batches_per_thread
    assert log.stats.groups <= log.stats.batches  # a group (one write + one fsync) holds one or more batches


def test_append_async_from_many_tasks(tmp_path: Path) -> None:
    async def main(log: DurableLog) -> None:
        await asyncio.gather(*(log.append_async(impressions(f"r{i}", 3)) for i in range(40)))

    with DurableLog(tmp_path, "impressions") as log:
        asyncio.run(main(log))
    keys = {(r.request_id, r.position) for r in read_stream(tmp_path, "impressions", ImpressionRecord)}
    assert len(keys) == 40 * 3


def test_unencodable_batch_fails_whole_and_writes_nothing(tmp_path: Path) -> None:
    with DurableLog(tmp_path, "events") as log:
        with pytest.raises(TypeError):
            log.append([{"event_id": "ok"}, {"event_id": object()}])
        log.append([{"event_id": "after"}])
    assert list(read_stream(tmp_path, "events")) == [{"event_id": "after"}]


def test_unknown_stream_and_closed_log_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StreamRecError, match="unknown log stream 'clicks'"):
        DurableLog(tmp_path, "clicks")
    log = DurableLog(tmp_path, "events")
    log.close()
    with pytest.raises(StreamRecError, match="closed"):
        log.append([{"event_id": "late"}])


def test_records_are_plain_json_lines(tmp_path: Path) -> None:
    with DurableLog(tmp_path, "impressions") as log:
        log.append(impressions("a", 2))
        segment = log.segment_path
    assert segment is not None
    lines = segment.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    first = msgspec.json.decode(lines[0])
    assert first["served_at"] == "2026-11-25T12:00:00Z" and first["canary_phase"] is None


def test_interval_mode_writes_before_returning_and_syncs_in_the_background(tmp_path: Path) -> None:
    with DurableLog(tmp_path, "impressions", fsync="interval", fsync_interval=0.01) as log:
        log.append(impressions("a", 3))
        segment = log.segment_path
        assert segment is not None
        # Readable by another reader as soon as append returns: the bytes are in the file (the kernel's page cache).
        assert [r.request_id for r in read_segment(segment, ImpressionRecord).records] == ["a"] * 3
        deadline = time.monotonic() + 5
        while log.stats.syncs == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert log.stats.syncs >= 1
        syncs = log.stats.syncs
        time.sleep(0.05)
        assert log.stats.syncs == syncs  # nothing written since: no fdatasync for a clean file
    assert list(read_stream(tmp_path, "impressions", ImpressionRecord)) == impressions("a", 3)


def test_interval_mode_async_appends_complete_without_the_writer_thread(tmp_path: Path) -> None:
    async def main(log: DurableLog) -> None:
        await asyncio.gather(*(log.append_async(impressions(f"r{i}", 2)) for i in range(20)))

    with DurableLog(tmp_path, "impressions", fsync="interval") as log:
        asyncio.run(main(log))
        assert log.stats.batches == 20 and log.stats.records == 40
    assert len(list(read_stream(tmp_path, "impressions", ImpressionRecord))) == 40


def test_interval_mode_rotates_segments_without_losing_a_batch(tmp_path: Path) -> None:
    batches = [impressions(f"r{i}", 4) for i in range(30)]
    with DurableLog(tmp_path, "impressions", fsync="interval", fsync_interval=0.001, max_segment_bytes=4096) as log:
        for batch in batches:
            log.append(batch)
    assert len(segment_paths(tmp_path, "impressions")) > 1
    assert list(read_stream(tmp_path, "impressions", ImpressionRecord)) == [r for b in batches for r in b]


def test_a_failed_background_sync_refuses_later_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamrec.core.eventlog as eventlog

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(eventlog, "_sync_data", broken)
    log = DurableLog(tmp_path, "events", fsync="interval", fsync_interval=0.005)
    log.append([{"event_id": "first"}])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            log.append([{"event_id": "more"}])
        except StreamRecError as exc:
            assert "fdatasync failed" in str(exc) and "Input/output error" in str(exc)
            break
        time.sleep(0.005)
    else:
        pytest.fail("appends kept succeeding after the background fdatasync failed")
    log.close()


def test_unknown_fsync_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StreamRecError, match="unknown fsync mode 'sometimes'"):
        DurableLog(tmp_path, "events", fsync="sometimes")
    with pytest.raises(StreamRecError, match="fsync interval must be positive"):
        DurableLog(tmp_path, "events", fsync="interval", fsync_interval=0)
