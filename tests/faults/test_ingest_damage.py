"""Issue 11 case 10: a damaged line in the middle of a log segment is corruption, not a torn tail.

Only the last, unterminated line of a segment can be torn by a crash. A NUL-filled line elsewhere
used to be dropped and counted as "torn"; now ingest loads everything else, keeps the damaged line
in the quarantine file with its segment and offset, and exits non-zero naming it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from streamrec.batch.ingest import quarantine_path
from streamrec.batch.migrate import init_db
from streamrec.core.eventlog import DurableLog, ImpressionRecord, segment_paths
from streamrec.core.settings import Settings
from tests.faults.conftest import assert_one_line_error, cli

MODEL = {"policy": "model", "model_version": "v1"}


def _records(prefix: str, n: int) -> list[ImpressionRecord]:
    now = datetime.now(UTC)
    return [
        ImpressionRecord(request_id=f"{prefix}{i}", position=1, served_at=now, user_id=1, item_id=i, **MODEL)
        for i in range(n)
    ]


def _impressions(settings: Settings) -> int:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute("select count(*) from ops.impressions").fetchall()[0][0]


@pytest.fixture
def damaged(settings: Settings) -> tuple[Settings, int]:
    """A segment: 3 good lines, a NUL-filled line, 2 good lines, then a torn tail; returns the damage's offset."""
    init_db(settings)
    log = DurableLog(settings.logs_dir, "impressions")
    log.append(_records("a", 3))
    log.close()
    [segment] = segment_paths(settings.logs_dir, "impressions")
    offset = segment.stat().st_size
    with open(segment, "ab") as handle:
        handle.write(b"\0" * 120 + b"\n")
    log = DurableLog(settings.logs_dir, "impressions")
    log.append(_records("b", 2))
    log.close()
    segments = segment_paths(settings.logs_dir, "impressions")
    with open(segments[-1], "ab") as handle:
        handle.write(b'{"request_id": "torn", "posi')  # what a crash mid-write leaves
    return settings, offset


def test_a_nul_line_mid_segment_is_quarantined_and_ingest_fails_after_loading_the_rest(damaged) -> None:
    settings, offset = damaged
    done = cli(settings.home, "ingest")
    line = assert_one_line_error(done, "1 damaged line(s)", f"at byte {offset}", "quarantine")
    assert "impressions: 5 new" in line and "1 torn lines skipped" in line
    assert _impressions(settings) == 5
    kept = [json.loads(x) for x in quarantine_path(settings).read_text().splitlines()]
    assert [(k["offset"], k["line"], bytes.fromhex(k["hex"])) for k in kept] == [(offset, 4, b"\0" * 120)]

    again = cli(settings.home, "ingest")  # still reported, nothing loaded twice, quarantine not repeated
    assert_one_line_error(again, "1 damaged line(s)")
    assert _impressions(settings) == 5
    assert len(quarantine_path(settings).read_text().splitlines()) == 1


def test_a_torn_tail_alone_is_not_an_error(settings: Settings) -> None:
    init_db(settings)
    log = DurableLog(settings.logs_dir, "impressions")
    log.append(_records("a", 3))
    log.close()
    [segment] = segment_paths(settings.logs_dir, "impressions")
    with open(segment, "ab") as handle:
        handle.write(b"\0" * 40)  # a NUL run with no newline: the unterminated last write
    done = cli(settings.home, "ingest")
    assert done.returncode == 0, done.stderr
    assert "3 new" in done.stdout and "1 torn lines skipped" in done.stdout
    assert not quarantine_path(settings).exists()
