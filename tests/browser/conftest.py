"""Real-browser fixtures: a system Chromium driven by Playwright, the viewer served on a free local port,
and a folder for screenshots.

The tests skip (with the reason) when Playwright or a Chromium executable is missing, except where
``SCIPION_KG_REQUIRE_BROWSER=1`` (CI, which installs both): there they fail.
No browser is ever downloaded: the executable is ``$SCIPION_KG_CHROMIUM`` or the first of
``chromium``, ``chromium-browser``, ``google-chrome`` on the PATH.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from scipion_kg.webview.app import create_app
from scipion_kg.webview.context import ViewerConfig
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS_VARIABLE = "SCIPION_KG_TEST_ARTIFACTS"
REQUIRE_VARIABLE = "SCIPION_KG_REQUIRE_BROWSER"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    explicit = os.environ.get("SCIPION_KG_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(reason: str) -> None:
    """Skip, or fail where the browser tests must run (CI sets SCIPION_KG_REQUIRE_BROWSER=1)."""
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_VARIABLE}=1 says the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    try:
        from playwright import sync_api
    except ImportError:
        _unavailable("Playwright for Python is not installed")
        raise
    executable = find_chromium()
    if executable is None and os.environ.get("SCIPION_KG_CHROMIUM"):
        _unavailable(f"SCIPION_KG_CHROMIUM={os.environ['SCIPION_KG_CHROMIUM']} is not a file")
    if executable is None:
        _unavailable(
            "no Chromium executable: install one (e.g. apt install chromium) or set SCIPION_KG_CHROMIUM; "
            f"looked for {', '.join(_CANDIDATES)} on the PATH"
        )
        raise AssertionError("unreachable")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors in the page: {errors}"


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Start the viewer on ``project_dir`` (127.0.0.1, a free port, a background thread); gives its URL."""
    servers = []

    def start(project_dir: Path) -> str:
        server = make_server("127.0.0.1", 0, create_app(ViewerConfig(project_dir=project_dir)), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where a test saves its screenshots; copied to ``$SCIPION_KG_TEST_ARTIFACTS/<test name>`` if set."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    yield folder
    destination = os.environ.get(ARTIFACTS_VARIABLE)
    if destination:
        shutil.copytree(folder, Path(destination) / request.node.name, dirs_exist_ok=True)
