"""The CLI's front matter: `--version`, every demo step in `demo --help`, and the progress bar helper."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from rich.console import Console

import streamrec.lab.demo as demo
from streamrec.core.progress import progress


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "streamrec", *args], env=env, capture_output=True, text=True)


def test_version() -> None:
    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"streamrec {version('streamrec')}"


def test_demo_help_lists_every_step_the_demo_runs() -> None:
    source = Path(demo.__file__).read_text()
    steps = re.findall(r'_step\(f?"(\d+)\. ([^"{]+)', source)
    assert len(steps) >= 12
    helped = _cli("demo", "--help").stdout
    for number, title in steps:
        first_words = " ".join(title.split()[:2])
        assert re.search(rf"\b{number}\. {re.escape(first_words)}", helped), (number, title)


def test_progress_bar_counts_steps_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress("simulating requests", 3, console=console) as advance:
        for _ in range(3):
            advance(1)
    text = out.getvalue()
    assert "simulating requests" in text and "3/3" in text
