"""A team's warehouse from a built one: the last days cut into daily drop files, the rest loaded as history."""

from __future__ import annotations

import subprocess
from pathlib import Path

from streamrec.batch.event_load import load_events
from streamrec.batch.migrate import init_db
from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse
from streamrec.lab.drop import cut_days_to_files

RAW_TABLES = ("creators", "items", "users", "sessions", "interactions")


def split_history(home: Path, tmp_path: Path, days: int) -> tuple[Settings, Path, int]:
    """(a fresh team home holding all but the last `days` days, the drop folder of those days, rows cut)."""
    source = tmp_path / "source"
    subprocess.run(["cp", "-r", str(home), str(source)], check=True)
    drop = tmp_path / "days"
    appended = cut_days_to_files(Settings(home=source).raw_path, drop, days=days)
    history = tmp_path / "history"
    history.mkdir()
    with open_warehouse(Settings(home=source), read_only=True) as con:
        for table in RAW_TABLES:
            con.execute(f"copy raw.{table} to '{history}/{table}.parquet'")
    settings = Settings(home=tmp_path / "team").ensure()
    init_db(settings)
    load_events(settings, [str(history)])
    return settings, drop, appended
