"""The HTML report renders in a real headless Chromium: a non-trivial screenshot, figures embedded as data URIs.

Needs /usr/bin/chromium (Debian package `chromium`); skipped only when it is missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_simulate import build_simulated_home

CHROMIUM = Path("/usr/bin/chromium")
FIGURES = ("exposure-share", "lorenz", "psi", "latency", "effects", "intersectional")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"),
]


def test_report_renders_in_headless_chromium(
    built_home: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from PIL import Image  # Pillow comes with matplotlib

    simulated, _ = build_simulated_home(built_home, tmp_path_factory)
    home = tmp_path / "home"
    shutil.copytree(simulated, home)
    html = tmp_path / "report.html"
    env = {**os.environ, "STREAMREC_HOME": str(home), "COLUMNS": "200"}
    made = subprocess.run(
        [sys.executable, "-m", "streamrec", "report", "--html", str(html)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    document = html.read_text()
    for figure in FIGURES:
        assert re.search(rf"<img alt='{figure}' src='data:image/png;base64,[A-Za-z0-9+/=]{{1000,}}'>", document)

    screenshot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={screenshot}",
        "--window-size=1280,2000",
        f"file://{html}",
    ]
    shot = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert shot.returncode == 0, shot.stderr[-3000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000
    image = Image.open(io.BytesIO(screenshot.read_bytes())).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 64  # text, table, coloured statuses and a chart, not a blank page
    background = max(colours)[0] / (image.width * image.height)
    assert background < 0.97  # the page is not (almost) one colour
