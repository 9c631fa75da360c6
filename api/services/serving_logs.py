"""The API's side of the durable logs: impressions and events appended via DurableLog, plus what it remembers.

At startup the existing impression segments are decoded once (msgspec, the log files, never the
warehouse: the API imports no DuckDB) to restore two things: position-weighted personalised exposure
per model version and item (the exposure controller's deficits) and the most recent request_id ->
user_id pairs (so events on requests served before a restart can still be attributed). After that
both are kept up to date in memory.
"""

from __future__ import annotations

import heapq
import math
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from streamrec.core.eventlog import DurableLog, segment_paths

EVENT_NAMESPACE = uuid.UUID("6f1d3a52-3c1e-4f0a-9a57-3b7c2f1e8d10")


@dataclass(frozen=True)
class ServedRequest:
    """What the API remembers of a served request to attribute its events."""

    user_id: int
    item_ids: frozenset[int]
    served_at: datetime | None = None  # naive UTC; None for requests restored from old logs without it


@dataclass(frozen=True)
class LogScan:
    """What the startup scan of the impression log found."""

    # model_version -> (item ids, position-weighted personalised exposure sum of 1/log2(1 + position) per item)
    exposure: dict[str, tuple[np.ndarray, np.ndarray]]
    # (request_id, user_id, item ids, served_at), oldest first
    recent_requests: list[tuple[str, int, list[int], datetime | None]]
    segments: int


class _ServedLine(msgspec.Struct):
    """The fields of an impression line the startup scan needs (the rest of the record is ignored)."""

    request_id: str
    item_id: int
    user_id: int
    served_at: datetime
    position: int = 0
    policy: str = ""
    model_version: str = ""


def scan_impressions(logs_dir: Path, recent: int) -> LogScan:
    """Sum personalised exposure per version and item and collect the `recent` latest requests from the segments.

    A line that does not decode (a torn tail after a crash) is skipped here; `streamrec ingest` is the
    place that reports damaged lines.
    """
    paths = segment_paths(logs_dir, "impressions")
    decoder = msgspec.json.Decoder(_ServedLine)
    exposure: dict[str, dict[int, float]] = {}
    requests: dict[str, tuple[int, list[int], datetime]] = {}
    for path in paths:
        for line in path.read_bytes().split(b"\n"):
            if not line:
                continue
            try:
                row = decoder.decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
            if row.policy == "personalized" and row.position >= 1 and row.model_version:
                per_item = exposure.setdefault(row.model_version, {})
                per_item[row.item_id] = per_item.get(row.item_id, 0.0) + 1.0 / math.log2(1 + row.position)
            user, items, served = requests.get(row.request_id, (row.user_id, [], row.served_at))
            if row.item_id not in items:
                items.append(row.item_id)
            requests[row.request_id] = (user, items, max(served, row.served_at))
    latest = heapq.nlargest(int(recent), requests.items(), key=lambda kv: kv[1][2])
    return LogScan(
        exposure={
            version: (
                np.fromiter(per_item.keys(), dtype=np.int64, count=len(per_item)),
                np.fromiter(per_item.values(), dtype=np.float64, count=len(per_item)),
            )
            for version, per_item in exposure.items()
        },
        recent_requests=[(rid, user, items, served) for rid, (user, items, served) in reversed(latest)],
        segments=len(paths),
    )


class ServingLogs:
    """The impression and event logs of this process and the bounded request -> user map."""

    def __init__(
        self, logs_dir: Path, request_map_size: int, fsync: str = "interval", fsync_interval: float = 0.05
    ) -> None:
        self.impressions = DurableLog(logs_dir, "impressions", fsync=fsync, fsync_interval=fsync_interval)
        self.events = DurableLog(logs_dir, "events", fsync=fsync, fsync_interval=fsync_interval)
        self.logs_dir = logs_dir
        self._requests: OrderedDict[str, ServedRequest] = OrderedDict()
        self._size = request_map_size
        self.peers: PeerRequests | None = None  # several workers: the requests the others served

    def remember(self, request_id: str, user_id: int, item_ids: list[int], served_at: datetime | None = None) -> None:
        """Keep a served request for event attribution, evicting the oldest beyond the cap."""
        self._requests[request_id] = ServedRequest(user_id, frozenset(item_ids), served_at)
        while len(self._requests) > self._size:
            self._requests.popitem(last=False)

    def served(self, request_id: str) -> ServedRequest | None:
        """The request, if it is among the remembered ones."""
        return self._requests.get(request_id)

    def restore(self, scan: LogScan) -> None:
        """Refill the request map from a startup scan."""
        for request_id, user_id, item_ids, served_at in scan.recent_requests:
            self.remember(request_id, user_id, item_ids, served_at)

    def close(self) -> None:
        """Flush and close both logs."""
        self.impressions.close()
        self.events.close()


class PeerRequests:
    """Several workers: the requests other workers served, read from their impression segments as they grow.

    An event may reach another worker than the page it answers (a new connection). Each worker follows the
    other workers' segments from where its startup scan began (`start_at_current_ends`, before that scan)
    and remembers their requests, in its follower loop and again on any unknown request_id before refusing.
    Only whole lines are read; a request split across two reads is merged.
    """

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._offsets: dict[Path, int] = {}
        self._own = f"-{os.getpid()}.jsonl"
        self._decoder = msgspec.json.Decoder(_ServedLine)
        self._lock = threading.Lock()

    def start_at_current_ends(self) -> None:
        """Skip what exists now (the startup scan reads it)."""
        for path in segment_paths(self.logs_dir, "impressions"):
            self._offsets[path] = path.stat().st_size

    def catch_up(self, logs: ServingLogs) -> int:
        """Remember the requests written to other workers' segments since the last call; returns how many."""
        added = 0
        with self._lock:
            for path in segment_paths(self.logs_dir, "impressions"):
                if path.name.endswith(self._own):
                    continue
                start = self._offsets.get(path, 0)
                try:
                    size = path.stat().st_size
                    if size <= start:
                        continue
                    with open(path, "rb") as handle:
                        handle.seek(start)
                        data = handle.read(size - start)
                except OSError:
                    continue
                cut = data.rfind(b"\n") + 1
                if not cut:
                    continue
                self._offsets[path] = start + cut
                pages: dict[str, tuple[int, list[int], datetime]] = {}
                for line in data[:cut].split(b"\n"):
                    if not line:
                        continue
                    try:
                        row = self._decoder.decode(line)
                    except (msgspec.DecodeError, UnicodeDecodeError):
                        continue
                    user, items, served = pages.get(row.request_id, (row.user_id, [], row.served_at))
                    items.append(row.item_id)
                    pages[row.request_id] = (user, items, max(served, row.served_at))
                for request_id, (user, items, served) in pages.items():
                    known = logs.served(request_id)
                    logs.remember(request_id, user, sorted(set(items) | (known.item_ids if known else set())), served)
                added += len(pages)
        return added


def event_id(request_id: str, item_id: int, event_type: str, event_ts: str) -> str:
    """A uuid fixed by what the event is, so a client retrying a batch does not create duplicates."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{request_id}|{item_id}|{event_type}|{event_ts}").hex
