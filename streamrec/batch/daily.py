"""`streamrec daily`: the daily cycle in one command, safe to rerun after a crash at any step.

Steps, each idempotent on its own so a rerun simply runs them all again:
  1. load    every Parquet/CSV file of the drop directory (`streamrec load events`: a file whose checksum is
             in ops.raw_loads is skipped, rows already stored are skipped, one transaction for all files);
  2. build   the feature lineage (`streamrec build` of every model but evaluation: built into a copy, published
             by rename only if every model and test passes; a crash leaves the published warehouse as it was);
  3. capture a new PSI reference, only when asked (`--capture-reference TAG`);
  4. ingest  the API's durable logs (`streamrec ingest`: inserts only keys not yet stored);
  5. evaluate the evaluation models (`streamrec build --select evaluation`);
  6. report  the scorecard and the HTML report (written atomically).
Nothing is kept between runs but what the steps themselves store, so no state file can go stale.

Exit codes (streamrec.cli): 0 every step done and every scorecard threshold met; 1 a step failed (its one-line
error names the step; what earlier steps stored stays, what the failing step did is not published; fix and
rerun); 3 every step done but scorecard thresholds failed (the scorecard is published and reported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

FEATURE_SELECTION = "staging intermediate features training"  # all but evaluation (it waits for ingest)
EXIT_SCORECARD_FAILED = 3


@dataclass
class DailyResult:
    """What one daily run did: a line per step, and whether scorecard thresholds failed."""

    steps: list[str] = field(default_factory=list)
    scorecard_failure: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when all is well, EXIT_SCORECARD_FAILED when only the scorecard failed."""
        return EXIT_SCORECARD_FAILED if self.scorecard_failure else 0


def daily(
    settings: Settings,
    drop: Path,
    late_days: float,
    mapping: Path | None = None,
    capture_reference: str | None = None,
    console: Console | None = None,
) -> DailyResult:
    """Run the daily cycle (see the module docstring); raise StreamRecError naming the step that failed."""
    from streamrec.batch.build import build, scorecard_only_failed
    from streamrec.batch.event_load import SUFFIXES, load_events
    from streamrec.batch.ingest import ingest_logs
    from streamrec.batch.reference import capture
    from streamrec.batch.report import report

    console = console or Console()
    if not drop.is_dir():
        raise StreamRecError(f"daily: drop directory {drop} does not exist")
    result = DailyResult()
    total = 6

    def step(number: int, name: str, action: Callable[[], object]) -> None:
        console.print(f"daily step {number}/{total}: {name}", highlight=False)
        try:
            outcome = action()
        except StreamRecError as exc:
            raise StreamRecError(f"daily step {number}/{total} ({name}) failed: {exc}") from exc
        line = f"{name}: {outcome}" if isinstance(outcome, str) and outcome else f"{name}: done"
        result.steps.append(line)
        console.print(line, highlight=False)

    def load() -> str:
        if not any(p.suffix.lower() in SUFFIXES for p in drop.iterdir() if p.is_file()):
            return f"no .parquet or .csv files in {drop}"
        return str(load_events(settings, [str(drop)], mapping_path=mapping, late_days=late_days))

    def evaluate() -> str:
        try:
            build(settings, select="evaluation")
        except StreamRecError as exc:
            if not scorecard_only_failed(settings):
                raise
            result.scorecard_failure = str(exc)  # published and reported below; the exit code says it
            return f"scorecard thresholds failed ({exc})"
        return "evaluation models built"

    def build_features() -> str:
        build(settings, select=FEATURE_SELECTION)
        return "features built and published"

    step(1, "load", load)
    step(2, "build", build_features)
    if capture_reference:
        step(3, "capture", lambda: capture(settings, tag=capture_reference))
    else:
        step(3, "capture", lambda: "skipped (no --capture-reference): the PSI reference is unchanged")
    step(4, "ingest", lambda: ingest_logs(settings))
    step(5, "evaluate", evaluate)
    step(6, "report", lambda: f"written to {report(settings, console=console)}")
    return result
