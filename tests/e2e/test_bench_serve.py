"""`bench/serve.py` end to end at toy size: it builds a bundle, starts the real server, drives it with wrk.

Keeps the benchmark from rotting between the runs that publish docs/benchmarks.md. Needs wrk (Debian
package; `.ci/run` installs it); without it the test is skipped with the install hint.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed: apt-get install wrk")


def test_the_serving_bench_runs_and_judges_both_goals(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(REPO / "bench" / "serve.py"),
        "--home",
        str(tmp_path / "bench"),
        "--items",
        "3000",
        "--users",
        "2000",
        "--duration",
        "1",
        "--rates",
        "200",
        "--concurrencies",
        "1",
        "--fsync-modes",
        "interval",
        "--no-write",
    ]
    published = (REPO / "docs" / "benchmarks.md").read_bytes()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    # Both levels ran against the real server and were served without errors.
    assert "| `interval` | 200 req/s paced" in out and "| `interval` | 1 concurrent" in out
    for line in out.splitlines():
        if line.startswith("| `interval` |"):
            cells = [c.strip() for c in line.split("|")]
            assert int(cells[3]) > 0 and cells[4] == "0", line  # requests served, no errors
    # The verdicts are computed, whichever way they go on a loaded CI machine.
    assert "p99 < 25 ms at 200 req/s: p99" in out
    assert "HTTP + logging ≤ 50% over in process (p50, one request at a time):" in out
    # --no-write leaves the published figures alone.
    assert (REPO / "docs" / "benchmarks.md").read_bytes() == published
