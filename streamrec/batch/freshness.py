"""`dbt source freshness` after `streamrec build`: run it on the published warehouse, report one line per state.

The sources declare `loaded_at_field` and thresholds in their YAML (dbt_project/models/staging/). A
stale source does not fail the build: freshness says whether the inputs are current, the data tests
say whether the outputs are right. The report names every source that warns or errors, with the age
of its newest row, so a stopped ingest or a static snapshot is visible on every build.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.core.settings import Settings


@dataclass(frozen=True)
class SourceFreshness:
    """One source table's freshness: `pass`, `warn`, `error` or `runtime error`, and its newest row."""

    source: str  # e.g. raw.interactions
    status: str
    max_loaded_at: str | None
    age_seconds: float | None
    message: str | None = None

    def describe(self) -> str:
        """`raw.interactions (newest 2025-05-31T23:59:00, 549.0 days old)`."""
        if self.max_loaded_at is None or self.age_seconds is None:
            return f"{self.source} ({self.message or 'no rows'})"
        return f"{self.source} (newest {self.max_loaded_at[:19]}, {self.age_seconds / 86_400:.1f} days old)"


def freshness_command(settings: Settings, output: Path) -> list[str]:
    """`dbt source freshness` for this home, with its own target directory (the build's run_results stay)."""
    from streamrec.batch.build import dbt_command, dbt_target_dir

    command = dbt_command(settings, ["source", "freshness", "--output", str(output)])
    command[command.index("--target-path") + 1] = str(dbt_target_dir(settings) / "freshness")
    return command


def run_freshness(settings: Settings, warehouse: Path) -> list[SourceFreshness]:
    """Run `dbt source freshness` against `warehouse` and parse its sources.json (empty if dbt wrote none)."""
    output = settings.home / "dbt" / "sources.json"
    output.unlink(missing_ok=True)
    env = {**os.environ, "STREAMREC_HOME": str(settings.home), "STREAMREC_WAREHOUSE": str(warehouse)}
    subprocess.run(freshness_command(settings, output), env=env, capture_output=True, text=True, check=False)
    if not output.exists():
        return []
    return parse_sources_json(json.loads(output.read_text()))


def parse_sources_json(document: dict[str, Any]) -> list[SourceFreshness]:
    """The results of dbt's sources.json artifact, by source name."""
    results = []
    for result in document.get("results", []):
        _, _, source, table = result["unique_id"].split(".")[:4]
        results.append(
            SourceFreshness(
                source=f"{source}.{table}",
                status=result.get("status", "runtime error"),
                max_loaded_at=result.get("max_loaded_at"),
                age_seconds=result.get("max_loaded_at_time_ago_in_s"),
                message=(result.get("error") or result.get("message") or None),
            )
        )
    return sorted(results, key=lambda r: r.source)


def summarize(results: list[SourceFreshness]) -> str:
    """`source freshness: 4 pass, 5 warn (raw.interactions (...), ...), 0 error` (one line per non-pass state)."""
    if not results:
        return "source freshness: dbt reported nothing (see dbt's log under STREAMREC_HOME/dbt/logs)"
    by_status: dict[str, list[SourceFreshness]] = {}
    for result in results:
        by_status.setdefault(result.status, []).append(result)
    parts = [f"{len(by_status.get('pass', []))} pass"]
    for status in ("warn", "error", "runtime error"):
        stale = by_status.get(status, [])
        if stale:
            parts.append(f"{len(stale)} {status}: " + ", ".join(r.describe() for r in stale))
    return "source freshness: " + "; ".join(parts)


def report_freshness(settings: Settings) -> str:
    """Run freshness on the published warehouse (as its one writer), print the summary; never raises for staleness."""
    from streamrec.core.warehouse import writer_lock

    with writer_lock(settings):  # dbt-duckdb opens the file read-write: queue like any batch job
        line = summarize(run_freshness(settings, settings.warehouse_path))
    print(line, flush=True)
    return line
