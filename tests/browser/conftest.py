"""A real gateway with local accounts and a configured identity provider, and Debian's
Chromium driven headless by playwright — the login pages as a person sees them.

The browser is the system one (`apt-get install chromium`); `playwright install` is never
needed. Without it these tests fail, naming what to install: a skipped browser test would
hide a broken login page.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.accounts import account_hash
from tests.e2e.conftest import wait_for_login_app
from tests.support.gateway import Gateway, run_gateway, server_entry
from tests.support.processes import REPO, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts"

ADA_PASSWORD = "ada-password-for-browser-tests"
ADA_GROUPS = ["mcp-user", "mcp-server-currenttime"]


@dataclass
class BrowserPage:
    """A fresh page plus every URL it requested, to prove the pages load nothing from elsewhere."""
    page: object
    requested: list[str] = field(default_factory=list)

    def foreign_requests(self, origin: str) -> list[str]:
        return [url for url in self.requested
                if urlsplit(url).scheme not in ("data", "about", "blob") and not url.startswith(origin + "/")]


@pytest.fixture(scope="session")
def login_gateway(tmp_path_factory) -> Iterator[Gateway]:
    """Local account `ada` and a generic OIDC provider (never contacted: its button is only looked at)."""
    idp = f"http://127.0.0.1:{free_port()}"
    auth = {
        "enabled": True,
        "provider_type": "generic",
        "generic": {"client_id": "gateway", "issuer": idp, "authorize_url": f"{idp}/authorize",
                    "token_url": f"{idp}/token", "jwks_url": f"{idp}/jwks"},
        "local": {"accounts": [{"username": "ada", "password_hash": account_hash(ADA_PASSWORD),
                                "groups": ADA_GROUPS}]},
    }
    servers = [server_entry("currenttime", f"http://127.0.0.1:{free_port()}")]
    with run_gateway(tmp_path_factory.mktemp("gw-browser"), servers, auth=auth,
                     env={"MCP_AUTH_CLIENT_SECRET": "browser-test-client-secret"}) as gw:
        wait_for_login_app(gw)
        yield gw


@pytest.fixture(scope="module")  # module: sync_playwright must be gone before asyncio tests run
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
                    "(`apt-get install -y chromium`); `playwright install` is not used", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need playwright's Python package (`pip install playwright`); "
                    "its browser download is not needed", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium) -> Iterator[BrowserPage]:
    """A page in a fresh context: no cookies from another test."""
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    recorded = BrowserPage(page)
    page.on("request", lambda request: recorded.requested.append(request.url))
    try:
        yield recorded
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class _CodeReceiver(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"the MCP client got its answer")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mcp_client_redirect_uri() -> Iterator[str]:
    """The loopback listener an MCP client (e.g. a desktop app) opens to receive its code."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CodeReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
