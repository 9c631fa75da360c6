"""Fault-suite helpers: run the real CLI as a subprocess, check its failure shape, fingerprint the warehouse.

Every fault test asserts the same things about a refused or survived operation: no traceback on
stderr, a one-line cause, and (where the operation was refused) a warehouse whose fingerprint (row
count and an order-independent checksum of every table) is what it was before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from streamrec.core.settings import Settings
from tests.conftest import build_once

CLI = [sys.executable, "-m", "streamrec"]


def cli(home: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`streamrec ARGS` over `home` in a subprocess, as an operator runs it."""
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, "STREAMREC_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_traceback(done: subprocess.CompletedProcess) -> None:
    """Neither stream shows a Python traceback."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stdout, done.stdout[-3000:]


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with exit 1 and one `error: ...` line on stderr containing every needle."""
    assert_no_traceback(done)
    assert done.returncode == 1, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def fingerprint(database: Path) -> dict[str, tuple[int, int]]:
    """schema.table -> (rows, checksum) for every base table: equal fingerprints, equal contents (up to order).

    A warehouse's raw file beside it (`raw.duckdb`, ADR 0008) is attached and its tables count as `raw.<table>`.
    """
    con = duckdb.connect(str(database), read_only=True)
    try:
        raw = database.with_name("raw.duckdb")
        if raw.exists() and raw != database:
            con.execute(f"attach '{raw}' as raw (read_only)")
        tables = con.execute(
            "select table_catalog = 'raw' and table_schema = 'main', table_schema, table_name "
            "from information_schema.tables where table_type = 'BASE TABLE' order by 1, 2, 3"
        ).fetchall()
        result = {}
        for in_raw, schema, table in tables:
            name = f'raw."{table}"' if in_raw else f'"{schema}"."{table}"'
            rows, checksum = con.execute(f"select count(*), coalesce(sum(hash(t)), 0) from {name} as t").fetchall()[0]
            result[f"raw.{table}" if in_raw else f"{schema}.{table}"] = (int(rows), int(checksum))
        return result
    finally:
        con.close()


@pytest.fixture(scope="session")
def registered_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated warehouse with two registered synthetic bundles, v1 promoted then v2 (do not modify: copy it).

    Beside the home, `ACTIVE.v1.json` is the pointer as it was while v1 served (an operator's backup).
    """
    import shutil

    from streamrec.batch.migrate import init_db
    from streamrec.lab.synthetic_bundle import write_synthetic_bundle
    from streamrec.models_ml.registry import promote, register

    def make(root: Path) -> None:
        settings = Settings(home=root / "home").ensure()
        init_db(settings)
        for version, seed, first in (("v1", 1, 1), ("v2", 2, 10_001)):
            write_synthetic_bundle(
                settings.artifacts_dir, version, n_users=60, n_items=150, seed=seed, first_item_id=first
            )
            register(settings, settings.artifacts_dir / version)
        promote(settings, "v1", by="faults", reason="first")
        shutil.copy(settings.artifacts_dir / "ACTIVE.json", root / "ACTIVE.v1.json")
        promote(settings, "v2", by="faults", reason="second")

    return build_once(tmp_path_factory, "faults_registered", make) / "home"
