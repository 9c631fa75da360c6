"""One progress-bar helper (rich) for long steps: simulate, ingest; on stderr, so stdout keeps only the summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress(description: str, total: int, console: Console | None = None) -> Iterator[Callable[[int], None]]:
    """A bar of `total` steps; yields `advance(n)`. Transient, and silent when stderr is not a terminal."""
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(steps: int = 1) -> None:
            bar.advance(task, steps)

        yield advance
