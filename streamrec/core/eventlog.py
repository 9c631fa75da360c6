"""The API's durable, append-only impression and event log: JSON-lines segments on local disk.

The API must not open the warehouse read-write (docs/adr/0001-warehouse-concurrency.md), yet an
impression has to be on disk before its response is sent. So the API appends records here and
`streamrec ingest` later loads the segments into ops.impressions / ops.events.

Usage from the API (one DurableLog per stream and process, created in the app's lifespan):

    log = DurableLog(settings.logs_dir, "impressions", fsync="interval")
    await log.append_async([ImpressionRecord(...), ...])   # returns once the batch is in the file
    log.close()

Layout: `<logs_dir>/<stream>/<stream>-<UTC start timestamp>-<pid>.jsonl`; one writer per file, a new
segment when the current one would exceed `max_segment_bytes`. A process killed mid-write leaves at
most a torn last line in its segment; readers skip it, and ingest counts it.

Three durability modes (`fsync`), docs/adr/0005-serving-concurrency.md:

- `always`: group commit. Callers from any thread or event loop hand encoded batches to one writer
  thread, which joins whatever is queued into one `os.write` and one fdatasync, then wakes every
  caller of that group. A batch survives a power loss once its call returns.
- `interval` (the API's default): the caller's thread writes the batch to the file (the kernel's
  page cache) before the call returns, so it survives `kill -9` of the process; a background
  thread fdatasyncs every `fsync_interval` seconds, so a power loss can lose at most that window.
  This takes the thread hand-off and the disk flush off the request path.
- `off`: written, never fsync'd (benchmarks and tests of everything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from streamrec.core.errors import StreamRecError

STREAMS = ("impressions", "events")
FSYNC_MODES = ("always", "interval", "off")
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
# One group is one os.write; capping it keeps a slow disk from building an unbounded buffer.
MAX_GROUP_BYTES = 8 * 1024 * 1024


class ImpressionRecord(msgspec.Struct, frozen=True):
    """One served item; fields and meaning as ops.impressions. Datetimes are UTC (naive or tz-aware)."""

    request_id: str
    position: int
    served_at: datetime
    user_id: int
    item_id: int
    policy: str
    model_version: str
    creator_id: int | None = None
    score: float | None = None
    propensity: float | None = None
    canary_phase: str | None = None
    latency_ms: float | None = None
    snapshot_id: str | None = None
    feature_age_seconds: float | None = None


class EventRecord(msgspec.Struct, frozen=True):
    """One feedback event; fields and meaning as ops.events. `event_id` is the client's idempotency key."""

    event_id: str
    user_id: int
    item_id: int
    event_type: str
    event_ts: datetime
    received_at: datetime
    request_id: str | None = None
    watch_seconds: float | None = None


@dataclass
class LogStats:
    """Counters of one DurableLog (for the API's metrics): a group is one write and one fsync."""

    batches: int = 0
    records: int = 0
    groups: int = 0
    bytes: int = 0
    segments: int = 0
    syncs: int = 0  # fdatasync calls (one per group in `always` mode, one per dirty interval in `interval`)


@dataclass
class _Pending:
    payload: bytes
    records: int
    future: Future[None] = field(default_factory=Future)


_STOP = object()
_encoders = threading.local()


def encode_lines(records: Iterable[Any]) -> bytes:
    """Records (dicts, msgspec Structs, dataclasses) as JSON lines, each ending in a newline."""
    encoder = getattr(_encoders, "encoder", None)
    if encoder is None:
        encoder = _encoders.encoder = msgspec.json.Encoder()
    return encoder.encode_lines(records)


class DurableLog:
    """An append-only, fsync'd JSON-lines log of one stream ("impressions" or "events") in `directory/stream/`."""

    def __init__(
        self,
        directory: Path,
        stream: str,
        *,
        max_segment_bytes: int = MAX_SEGMENT_BYTES,
        fsync: str = "always",
        fsync_interval: float = 0.05,
    ) -> None:
        """Prepare the stream's folder; the first segment is created by the first append.

        `fsync` is one of FSYNC_MODES (see the module docstring); `fsync_interval` (seconds) is the
        longest a written batch waits for its fdatasync in `interval` mode.
        """
        if stream not in STREAMS:
            raise StreamRecError(f"unknown log stream {stream!r}: expected one of {', '.join(STREAMS)}")
        if fsync not in FSYNC_MODES:
            raise StreamRecError(f"unknown fsync mode {fsync!r}: expected one of {', '.join(FSYNC_MODES)}")
        if not fsync_interval > 0:
            raise StreamRecError(f"fsync interval must be positive, got {fsync_interval!r} s")
        self.directory = Path(directory) / stream
        self.stream = stream
        self.max_segment_bytes = max_segment_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.durable = fsync != "off"
        self.stats = LogStats()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._closed = False
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        # Called at start and after a fork: the child gets no writer thread and must not share the parent's segment.
        self._pid = os.getpid()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._segment: Path | None = None
        self._size = 0
        self._dirty = False  # written since the last fdatasync (`interval` mode)
        self._sync_error: BaseException | None = None  # a failed background fdatasync fails every later append
        self._stop_syncing = threading.Event()

    @property
    def segment_path(self) -> Path | None:
        """The segment this process currently appends to (None before the first append)."""
        return self._segment

    def submit(self, records: Iterable[Any]) -> Future[None]:
        """Queue a batch; the future completes once the batch is written (and fdatasync'd in `always` mode).

        The batch is encoded here, in the caller's thread, so an unencodable record fails the call
        before anything is written: a batch lands whole or not at all (bar a torn tail on a crash).
        In `interval` and `off` modes the write itself also happens here and the future is done.
        """
        payload = encode_lines(records)
        pending = _Pending(payload=payload, records=payload.count(b"\n"))
        if not payload:
            pending.future.set_result(None)
            return pending.future
        if self.fsync != "always":
            self._write_now(pending)
            pending.future.set_result(None)
            return pending.future
        with self._lock:
            self._check_open()
            if self._thread is None:
                self._thread = threading.Thread(target=self._writer, name=f"eventlog-{self.stream}", daemon=True)
                self._thread.start()
            self._queue.put(pending)
        return pending.future

    def append(self, records: Iterable[Any]) -> None:
        """Append a batch and return once it is written as the mode promises (blocking; async: `append_async`)."""
        self.submit(records).result()

    async def append_async(self, records: Iterable[Any]) -> None:
        """Append a batch without blocking the event loop on a disk flush.

        `always`: resumes once the batch's group is fdatasync'd. `interval`/`off`: the write (to the
        page cache, microseconds) happens in this call and there is nothing to wait for.
        """
        future = self.submit(records)
        if not future.done():
            await asyncio.wrap_future(future)
        else:
            future.result()  # re-raise a failed write

    def _check_open(self) -> None:
        # Called under self._lock.
        if self._closed:
            raise StreamRecError(f"event log {self.directory} is closed")
        if self._pid != os.getpid():
            self._reset_process_state()
        if self._sync_error is not None:
            raise StreamRecError(
                f"event log {self.directory}: a background fdatasync failed ({self._sync_error}); "
                "records written since the last successful sync may not be on disk, so the log refuses appends"
            )

    def _write_now(self, pending: _Pending) -> None:
        """`interval`/`off` modes: write in the caller's thread, under the lock that orders writers."""
        with self._lock:
            self._check_open()
            try:
                self._write(pending.payload)
            except BaseException:
                self._close_segment()  # it may end in a partial line: never append after it
                raise
            if self.fsync == "interval":
                self._dirty = True
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._syncer, name=f"eventlog-sync-{self.stream}", daemon=True
                    )
                    self._thread.start()
            self.stats.groups += 1
            self.stats.batches += 1
            self.stats.records += pending.records
            self.stats.bytes += len(pending.payload)

    def close(self) -> None:
        """Finish every queued batch, stop the writer thread and close the segment."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
            if thread is not None:
                self._queue.put(_STOP)
                self._stop_syncing.set()
        if thread is not None:
            thread.join()
        with self._lock:
            if self._dirty and self._fd is not None and self._pid == os.getpid():
                with contextlib.suppress(OSError):
                    _sync_data(self._fd)
                self._dirty = False
            self._close_segment()

    def __enter__(self) -> DurableLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _writer(self) -> None:
        stop = False
        while not stop:
            group = [self._queue.get()]
            if group[0] is _STOP:
                return
            size = len(group[0].payload)
            while size < MAX_GROUP_BYTES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                group.append(item)
                size += len(item.payload)
            try:
                self._write(b"".join(p.payload for p in group))
            except BaseException as exc:
                # The segment may now end in a partial line: never append after it, start a new one next time.
                self._close_segment()
                for pending in group:
                    pending.future.set_exception(exc)
                continue
            self.stats.groups += 1
            self.stats.syncs += 1
            self.stats.batches += len(group)
            self.stats.records += sum(p.records for p in group)
            self.stats.bytes += size
            for pending in group:
                pending.future.set_result(None)

    def _syncer(self) -> None:
        """`interval` mode: fdatasync the current segment every `fsync_interval` seconds while it is dirty."""
        while not self._stop_syncing.wait(self.fsync_interval):
            with self._lock:
                if not self._dirty or self._fd is None:
                    continue
                # A duplicate descriptor: the writer may rotate (close) the segment while this one syncs.
                fd = os.dup(self._fd)
                self._dirty = False
            try:
                _sync_data(fd)
                self.stats.syncs += 1
            except OSError as exc:
                self._sync_error = exc
            finally:
                os.close(fd)

    def _write(self, data: bytes) -> None:
        if self._fd is None or (self._size > 0 and self._size + len(data) > self.max_segment_bytes):
            self._open_segment()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        if self.fsync == "always":
            _sync_data(self._fd)

    def _open_segment(self) -> None:
        if self._fd is not None and self._dirty:
            _sync_data(self._fd)  # the closing segment's tail must not miss its interval sync
            self._dirty = False
        self._close_segment()
        while True:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self.directory / f"{self.stream}-{stamp}-{os.getpid()}.jsonl"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                time.sleep(1e-6)  # another log of this stream in this process started in the same microsecond
                continue
            break
        if self.durable:
            _sync_directory(self.directory)  # the new file's name must survive a crash, not only its bytes
        self._fd, self._segment, self._size = fd, path, 0
        self.stats.segments += 1

    def _close_segment(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None


def _sync_data(fd: int) -> None:
    # fdatasync also persists the new file size (needed to read appended bytes) but skips mtime: cheaper than fsync.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_paths(directory: Path, stream: str) -> list[Path]:
    """Every segment of a stream under `directory` (the logs dir), oldest first (names sort by start time)."""
    if stream not in STREAMS:
        raise StreamRecError(f"unknown log stream {stream!r}: expected one of {', '.join(STREAMS)}")
    return sorted((Path(directory) / stream).glob(f"{stream}-*.jsonl"))


@dataclass
class SegmentContents:
    """The records of one segment and how many lines could not be decoded (a torn tail after a crash)."""

    path: Path
    records: list[Any]
    torn_lines: int


def read_segment(path: Path, record_type: type | None = None) -> SegmentContents:
    """Decode a segment, skipping a torn last line; a bad line before the last one is corruption and raises.

    `record_type` (e.g. ImpressionRecord) validates each record; by default records are dicts.
    """
    decoder = msgspec.json.Decoder(record_type) if record_type is not None else msgspec.json.Decoder()
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, else a last line whose write may be torn
    records: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(decoder.decode(line))
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise StreamRecError(f"{path}:{number}: corrupt log line ({exc}); only the last line may be torn") from exc
    torn = 0
    if tail:
        try:
            records.append(decoder.decode(tail))
        except (msgspec.DecodeError, UnicodeDecodeError):
            torn = 1
    return SegmentContents(path=Path(path), records=records, torn_lines=torn)


@dataclass(frozen=True)
class DamagedLine:
    """A line before a segment's last one that is not a JSON object: corruption, not a torn write."""

    segment: Path
    offset: int  # byte offset of the line's first byte
    line_number: int  # 1-based
    data: bytes


def damaged_lines(path: Path) -> list[DamagedLine]:
    """Lines of a segment, but the last (unterminated) one, that do not decode as JSON (NUL runs, garbage).

    A crash can only tear the line being written, which is the unterminated tail; anything else that
    does not decode is damage to data that was once complete, and must be reported, not skipped.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    lines.pop()  # the tail: b"" after a final newline, or a possibly torn last write
    damaged: list[DamagedLine] = []
    offset = 0
    for number, line in enumerate(lines, start=1):
        try:
            if not isinstance(_ANY_JSON.decode(line), dict):
                raise msgspec.DecodeError("not a JSON object")
        except (msgspec.DecodeError, UnicodeDecodeError):
            damaged.append(DamagedLine(segment=Path(path), offset=offset, line_number=number, data=line))
        offset += len(line) + 1
    return damaged


_ANY_JSON = msgspec.json.Decoder()


def read_stream(directory: Path, stream: str, record_type: type | None = None) -> Iterator[Any]:
    """Every record of a stream, segment by segment, torn tails skipped."""
    for path in segment_paths(directory, stream):
        yield from read_segment(path, record_type).records
