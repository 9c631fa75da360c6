"""The API docs page renders offline in headless Chromium: every operation's summary is in the rendered DOM.

Chromium resolves no host but 127.0.0.1 here (`--host-resolver-rules`), so a page that still needed a
CDN would stay blank. Needs /usr/bin/chromium (Debian package `chromium`); skipped only when it is missing.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle
from tests.e2e.conftest import ApiServer

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("docs") / "home"
    write_synthetic_bundle(home / "artifacts", "v1", n_users=50, n_items=100, seed=5)
    write_active_pointer(home / "artifacts", "v1")
    api = ApiServer(home).start()
    try:
        yield api
    finally:
        api.stop()


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Offline: every host but the loopback server fails to resolve, as on a machine with no internet.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.parametrize(
    ("page_path", "body_starts"), [("/schema", "const ui = SwaggerUIBundle"), ("/schema/redoc", "<body")]
)
def test_the_docs_pages_reference_only_local_assets(docs_server: ApiServer, page_path: str, body_starts: str) -> None:
    page = httpx.get(f"{docs_server.url}{page_path}", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text.split(body_starts)[0]  # the head: scripts, styles, fonts, favicon
    assert not re.search(r"(src|href)=['\"]https?://", html), html
    assets = re.findall(r"(?:src|href)=\"(/schema-assets/[^\"]+)\"", html)
    assert assets, html
    for asset in assets:
        served = httpx.get(f"{docs_server.url}{asset}", timeout=10)
        assert served.status_code == 200 and len(served.content) > 10_000, asset


def test_the_redoc_page_renders_its_operations_offline(docs_server: ApiServer, tmp_path: Path) -> None:
    schema = httpx.get(f"{docs_server.url}/schema/openapi.json", timeout=10).json()
    summaries = [op["summary"] for ops in schema["paths"].values() for op in ops.values()]
    dom = _chromium(tmp_path / "profile-redoc", "--dump-dom", f"{docs_server.url}/schema/redoc")
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert "redoc-wrap" in dom.stdout  # Redoc mounted (a blank page has only the <redoc> element)
    for summary in summaries:
        assert summary in dom.stdout, f"operation {summary!r} is not in the rendered Redoc page"


def test_the_docs_page_renders_its_operations_offline(docs_server: ApiServer, tmp_path: Path) -> None:
    from PIL import Image  # Pillow comes with matplotlib

    schema = httpx.get(f"{docs_server.url}/schema/openapi.json", timeout=10).json()
    summaries = [op["summary"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(summaries) >= 8

    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", f"{docs_server.url}/schema")
    assert dom.returncode == 0, dom.stderr[-3000:]
    rendered = dom.stdout
    assert "swagger-ui" in rendered
    for summary in summaries:
        assert summary in rendered, f"operation {summary!r} is not in the rendered page"
    for operation_id in ("getRecommendations", "postEvents", "getHealth"):
        assert f"operations-{operation_id}" in rendered or operation_id in rendered

    screenshot = tmp_path / "docs.png"
    shot = _chromium(
        tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1280,1600", f"{docs_server.url}/schema"
    )
    assert shot.returncode == 0, shot.stderr[-3000:]
    image = Image.open(io.BytesIO(screenshot.read_bytes())).convert("RGB")
    assert image.size == (1280, 1600)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 64  # text, coloured method badges: not a white page
    assert max(colours)[0] / (image.width * image.height) < 0.97
