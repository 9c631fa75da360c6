"""A drop directory from a generated world: its last days cut out of raw into per-day Parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb


def cut_days_to_files(raw: Path, folder: Path, days: int) -> int:
    """Move sessions started (and interactions on, or in sessions started) in the last `days` days to files.

    Writes `sessions_<date>.parquet` and `interactions_<date>.parquet` per day into `folder` and deletes
    those rows from raw; returns the number of interactions moved. Loading the files restores raw exactly.
    """
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(raw))  # the raw file (Settings.raw_path), where raw.<table> resolves
    try:
        cutoff = con.sql(f"select date_trunc('day', max(started_ts)) - interval {days - 1} day from raw.sessions")
        start = cutoff.fetchall()[0][0]
        con.execute(f"create temp table cut as select session_id from raw.sessions where started_ts >= '{start}'")
        moved = f"from raw.interactions where (session_id in (select * from cut) or event_ts >= '{start}')"
        for (day,) in con.sql(
            f"select distinct cast(event_ts as date) {moved} union select distinct cast(started_ts as date) "
            "from raw.sessions where session_id in (select * from cut) order by 1"
        ).fetchall():
            con.execute(
                f"copy (select * from raw.sessions where session_id in (select * from cut) "
                f"and cast(started_ts as date) = '{day}') to '{folder}/sessions_{day}.parquet'"
            )
            con.execute(
                f"copy (select * {moved} and cast(event_ts as date) = '{day}') to '{folder}/interactions_{day}.parquet'"
            )
        count = con.sql(f"select count(*) {moved}").fetchall()[0][0]
        con.execute(f"delete {moved}")
        con.execute("delete from raw.sessions where session_id in (select * from cut)")
        return int(count)
    finally:
        con.close()
