"""The widget in a real browser: Debian's Chromium (`/usr/bin/chromium`, installed by .ci/run;
Playwright downloads no browser) driving a real `karta serve` with the real Claude Code
harness and the scripted model, on SQLite.

Two loopback origins besides the data plane's: a builder's site whose embed key allows it, and
a stranger's that it does not. Screenshots land in `test-artifacts/browser/`.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from karta.testing import ScriptedModel
from karta.web import DIST
from tests.conftest import ROOT, SUPPORT_BOT, Database, KartaServer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
PROJECT = "local/support-bot"

if not CHROMIUM.exists() or not (DIST / "karta.js").is_file():
    pytest.skip(
        "needs /usr/bin/chromium (apt-get install chromium) and the built widget "
        "(scripts/build-widget)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.harness

SITE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Beans &amp; Co.</title>
<style>
  /* A host page's CSS at its most hostile: none of it may reach the widget. */
  * {{ color: #d00 !important; font-family: "Comic Sans MS", cursive !important; }}
  div, p, button {{ font-size: 30px !important; border: 3px dashed #d00 !important; }}
  body {{ margin: 0; background: #fdf6ec; font: 18px Georgia, serif; }}
  main {{ max-width: 760px; margin: 0 auto; padding: 48px 32px; }}
</style></head>
<body><main><h1>Beans &amp; Co.</h1><p>Freshly roasted coffee, shipped in two days.</p></main>
<script src="{data_plane}/widget/v1/karta.js" data-embed-key="{key}"
        data-project="{project}" data-theme-accent="#8a4b2a" async></script>
</body></html>
"""


class Site:
    """A page on its own loopback origin (`http://127.0.0.1:<port>`); `html` is what it serves,
    set once the embed key it names exists."""

    def __init__(self) -> None:
        self.html = ""
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stage:
    server: KartaServer
    model: ScriptedModel
    site: Site  # allowed by the embed key
    stranger: Site  # not allowed
    embed_key: str

    @property
    def hosted(self) -> str:
        return f"{self.server.url}/{PROJECT}"


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


@pytest.fixture(scope="module")
def stage(model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    db = Database("sqlite")
    server = KartaServer(SUPPORT_BOT, tmp_path_factory.mktemp("karta-home"), model, db).start()
    site, stranger = Site(), Site()
    try:
        with server.control() as control:
            r = control.post(
                "/v1/projects/support-bot/embed_keys",
                json={
                    "name": "beans site",
                    "allowed_origins": [site.origin],
                    "hosted_page": True,
                    "theme": {"accent": "#4f46e5"},
                },
            )
            assert r.status_code == 201, r.text
            key = r.json()["embed_key"]["key"]
        site.html = stranger.html = SITE_PAGE.format(
            data_plane=server.url, key=key, project=PROJECT
        )
        yield Stage(server, model, site, stranger, key)
    finally:
        site.close()
        stranger.close()
        server.stop()
        db.drop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stage: Stage) -> Iterator[Page]:
    """A fresh browser profile per test (its own localStorage)."""
    stage.model.reset()
    context = browser.new_context(viewport={"width": 1100, "height": 760}, device_scale_factor=1)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
