"""The API's side of the durable logs: impressions and events appended via EventLog, plus what it remembers.

At startup the existing impression segments are scanned once with an in-memory DuckDB `read_json`
(the log files, not the warehouse) to restore two things: impressions per item (for the fairness
exposure counters) and the most recent request_id -> user_id pairs (so events on requests served
before a restart can still be attributed). After that both are kept up to date in memory.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from streamrec.eventlog import EventLog, segment_paths

IMPRESSION_COLUMNS = "{'request_id': 'VARCHAR', 'item_id': 'BIGINT', 'user_id': 'BIGINT', 'served_at': 'TIMESTAMP'}"
EVENT_NAMESPACE = uuid.UUID("6f1d3a52-3c1e-4f0a-9a57-3b7c2f1e8d10")


@dataclass(frozen=True)
class ServedRequest:
    """What the API remembers of a served request to attribute its events."""

    user_id: int
    item_ids: frozenset[int]


@dataclass(frozen=True)
class LogScan:
    """What the startup scan of the impression log found."""

    item_ids: np.ndarray  # distinct item ids with impressions
    impressions: np.ndarray  # impressions per item id
    recent_requests: list[tuple[str, int, list[int]]]  # (request_id, user_id, item ids), oldest first
    segments: int


def scan_impressions(logs_dir: Path, recent: int) -> LogScan:
    """Count impressions per item and collect the `recent` latest requests from the impression segments."""
    paths = [str(p) for p in segment_paths(logs_dir, "impressions")]
    if not paths:
        return LogScan(np.zeros(0, np.int64), np.zeros(0, np.int64), [], 0)
    con = duckdb.connect()  # in memory: the log files, never the warehouse
    try:
        files = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"  # views take no parameters
        source = (
            f"read_json({files}, format='newline_delimited', ignore_errors=true, columns={IMPRESSION_COLUMNS})"
            " where request_id is not null and item_id is not null"  # a torn last line decodes as all-null
        )
        con.execute(f"create temp view impressions as select * from {source}")
        counts = con.sql("select item_id, count(*) from impressions group by item_id").fetchnumpy()
        requests = con.sql(
            f"""
            select request_id, any_value(user_id), list(distinct item_id), max(served_at) as served
            from impressions group by request_id order by served desc limit {int(recent)}
            """
        ).fetchall()
    finally:
        con.close()
    return LogScan(
        item_ids=np.asarray(counts["item_id"], dtype=np.int64),
        impressions=np.asarray(counts["count_star()"], dtype=np.int64),
        recent_requests=[(r[0], int(r[1]), list(r[2])) for r in reversed(requests)],
        segments=len(paths),
    )


class ServingLogs:
    """The impression and event logs of this process and the bounded request -> user map."""

    def __init__(
        self, logs_dir: Path, request_map_size: int, fsync: str = "interval", fsync_interval: float = 0.05
    ) -> None:
        self.impressions = EventLog(logs_dir, "impressions", fsync=fsync, fsync_interval=fsync_interval)
        self.events = EventLog(logs_dir, "events", fsync=fsync, fsync_interval=fsync_interval)
        self.logs_dir = logs_dir
        self._requests: OrderedDict[str, ServedRequest] = OrderedDict()
        self._size = request_map_size

    def remember(self, request_id: str, user_id: int, item_ids: list[int]) -> None:
        """Keep a served request for event attribution, evicting the oldest beyond the cap."""
        self._requests[request_id] = ServedRequest(user_id, frozenset(item_ids))
        while len(self._requests) > self._size:
            self._requests.popitem(last=False)

    def served(self, request_id: str) -> ServedRequest | None:
        """The request, if it is among the remembered ones."""
        return self._requests.get(request_id)

    def restore(self, scan: LogScan) -> None:
        """Refill the request map from a startup scan."""
        for request_id, user_id, item_ids in scan.recent_requests:
            self.remember(request_id, user_id, item_ids)

    def close(self) -> None:
        """Flush and close both logs."""
        self.impressions.close()
        self.events.close()


def event_id(request_id: str, item_id: int, event_type: str, event_ts: str) -> str:
    """A uuid fixed by what the event is, so a client retrying a batch does not create duplicates."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{request_id}|{item_id}|{event_type}|{event_ts}").hex
