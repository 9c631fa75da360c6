"""SQL against a test home's warehouse (raw attached writable), for tests that tamper with stored rows."""

from __future__ import annotations

from streamrec.core.settings import Settings
from streamrec.core.warehouse import open_warehouse


def update_warehouse(settings: Settings, sql: str) -> int:
    """Run one statement ending in `returning ...` (or a count) and return its first value."""
    con = open_warehouse(settings, write_raw=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()
