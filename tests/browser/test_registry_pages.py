"""The registry's pages in Debian's Chromium: people with different scopes sign in and see and
do exactly what their scopes allow — a reader sees no switch, a toggler flips one (by keyboard),
an editor saves a field, an admin registers; a revoked OAuth client's next MCP call is refused.
Every page passes axe-core with no serious or critical violation, loads nothing from elsewhere,
and its screenshot is written to test-artifacts/ — or, with UPDATE_DOCS_IMAGES=1, to docs/images/
(the README shows the servers page): a test run leaves the checkout as it found it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.accounts import account_hash
from tests.browser.test_login_pages import sign_in
from tests.e2e.conftest import ADMIN_PASSWORD, wait_for_login_app
from tests.support.facade import Facade
from tests.support.gateway import Gateway, run_gateway, server_entry
from tests.support.waiting import wait_until
from tests.support.mcp_clients import ACCEPT, INIT
from tests.support.processes import REPO, free_port
from tests.support.upstreams import mcp_upstream

IMAGES = REPO / "docs" / "images" if os.environ.get("UPDATE_DOCS_IMAGES") == "1" else REPO / "test-artifacts"
PASSWORD = "registry-pages-password-for-tests"
USERS = {
    "rob": ["mcp-user"],                                        # reads the registry
    "tom": ["mcp-user", "mcp-server-currenttime-toggle"],       # may toggle currenttime
    "eve": ["mcp-user", "mcp-server-currenttime-edit"],         # may edit currenttime
    "cal": ["mcp-server-currenttime"],                          # uses currenttime (OAuth clients)
}


@pytest.fixture(scope="module")
def pages_gateway(tmp_path_factory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gw-registry-pages")
    accounts = [{"username": u, "password_hash": account_hash(PASSWORD), "groups": g} for u, g in USERS.items()]
    with mcp_upstream(tmp) as upstream:
        servers = [server_entry("currenttime", upstream.url, description="Current time by timezone"),
                   server_entry("weather", f"http://127.0.0.1:{free_port()}", description="Forecasts (down in this test)")]
        with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                         gateway={"health_check_interval": "1s", "health_check_timeout": "3s"},
                         env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
            wait_for_login_app(gw)
            _wait_for_checks(gw)
            yield gw


def _wait_for_checks(gw: Gateway) -> None:
    token = httpx.post(f"{gw.url}/oauth/login/local", data={"username": "admin", "password": ADMIN_PASSWORD},
                       headers={"origin": gw.url}).cookies["mcp_gateway_session"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listing = httpx.get(f"{gw.url}/api/servers", cookies={"mcp_gateway_session": token}, timeout=10).json()
        if all(s["health"]["checked_at"] for s in listing["servers"]):
            return
        time.sleep(0.3)
    raise TimeoutError("the servers were not checked")


def signed_in(page, gw: Gateway, user: str, path: str = "/") -> None:
    page.goto(f"{gw.url}{path}")
    assert urlsplit(page.url).path == "/oauth/login"  # not signed in: the login page, next= the page
    sign_in(page, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
    assert urlsplit(page.url).path == path, page.url


def axe_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


def card(page, name: str):
    return page.locator(f"#server-{name}")


def test_reader_sees_every_server_health_and_no_controls(pages_gateway, browser_page):
    page = browser_page.page
    signed_in(page, pages_gateway, "rob")
    assert page.get_by_role("heading", level=1).inner_text() == "Servers"
    current = card(page, "currenttime").inner_text()
    assert "Healthy" in current and "Current time by timezone" in current
    assert f"{pages_gateway.url}/api/streamable/currenttime" in current and "/api/execute/currenttime/sse" in current
    weather = card(page, "weather").inner_text()
    assert "Failing" in weather, weather  # shown as failing, not hidden
    assert page.get_by_role("switch").count() == 0
    assert page.get_by_text("Register a server").count() == 0
    page.goto(f"{pages_gateway.url}/registry/servers/currenttime")
    assert page.locator("form[action$='/edit']").count() == 0 and page.get_by_role("button", name="Delete").count() == 0
    row = page.get_by_role("row", name="current_time_by_timezone")
    assert "needs mcp:server:currenttime:tool:current_time_by_timezone:execute" in row.inner_text()
    # The API still refuses what the page does not offer, even posted by hand from the page's origin.
    refused = page.request.post(f"{pages_gateway.url}/registry/servers/currenttime/toggle",
                                headers={"origin": pages_gateway.url}, form={"enabled": "false"})
    assert refused.status == 403 and "mcp:server:currenttime:toggle" in refused.text()
    assert browser_page.foreign_requests(pages_gateway.url) == []


def test_toggler_flips_the_switch_with_the_keyboard(pages_gateway, browser_page):
    page = browser_page.page
    signed_in(page, pages_gateway, "tom")
    switch = page.get_by_role("switch", name="currenttime enabled")
    assert switch.get_attribute("aria-checked") == "true"
    assert page.get_by_role("switch").count() == 1  # weather is not theirs to toggle
    for _ in range(40):  # bounded: Tab through the page until the switch has focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('role')") == "switch":
            break
    else:
        pytest.fail("the switch cannot be reached with Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("status").inner_text() == "The server's state was changed."
    assert page.get_by_role("switch", name="currenttime enabled").get_attribute("aria-checked") == "false"
    # The proxy re-reads the registry's state file within a second (mcp_gateway/registry.py).
    wait_until(lambda: _enabled(pages_gateway, "currenttime") is False, 10, "the proxy sees the server disabled")
    with page.expect_navigation():
        page.get_by_role("switch", name="currenttime enabled").click()
    wait_until(lambda: _enabled(pages_gateway, "currenttime") is True, 10, "the proxy sees the server enabled")


def _enabled(gw: Gateway, name: str) -> bool:
    token = httpx.post(f"{gw.url}/oauth/login/local", data={"username": "admin", "password": ADMIN_PASSWORD},
                       headers={"origin": gw.url}).cookies["mcp_gateway_session"]
    return httpx.get(f"{gw.url}/api/servers/{name}", cookies={"mcp_gateway_session": token}, timeout=10).json()["enabled"]


def test_editor_saves_a_description_but_gets_no_url_field(pages_gateway, browser_page):
    page = browser_page.page
    signed_in(page, pages_gateway, "eve", "/registry/servers/currenttime")
    assert page.get_by_label("Url").count() == 0  # the upstream URL needs mcp:registry:admin
    page.get_by_label("Description").fill("Current time, edited in the browser")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "The changes were saved."
    assert page.get_by_label("Description").input_value() == "Current time, edited in the browser"
    sneaked = page.request.post(f"{pages_gateway.url}/registry/servers/currenttime/edit",
                                headers={"origin": pages_gateway.url}, form={"url": "http://127.0.0.1:9"})
    assert sneaked.status == 403 and "url" in sneaked.text()
    with page.expect_navigation():
        page.get_by_label("Description").fill("Current time by timezone")
        page.get_by_role("button", name="Save").click()


def test_admin_registers_and_deletes_a_server(pages_gateway, browser_page):
    page = browser_page.page
    signed_in(page, pages_gateway, "admin")
    page.get_by_label("Name").fill("scratch")
    page.get_by_label("Upstream URL").fill(f"http://127.0.0.1:{free_port()}")
    with page.expect_navigation():
        page.get_by_role("button", name="Register").click()
    assert page.get_by_role("status").inner_text() == "The server was registered."
    assert card(page, "scratch").count() == 1
    page.goto(f"{pages_gateway.url}/registry/servers/scratch")
    with page.expect_navigation():
        page.get_by_role("button", name="Delete scratch").click()
    assert card(page, "scratch").count() == 0


def _authorize_client(gw: Gateway, user: str) -> str:
    """An MCP client authorized by `user` through the consent page; its access token."""
    async def flow() -> str:
        async with httpx.AsyncClient(base_url=gw.url, timeout=15) as http:
            facade = Facade(http)
            client = await facade.register(client_name="Desk MCP client")
            grant = await facade.authorize(client, gw.streamable_url("currenttime"), user, PASSWORD)
            return (await facade.redeem(client, grant)).json()["access_token"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # playwright's sync API owns this thread's loop
        return pool.submit(asyncio.run, flow()).result(timeout=60)


def _mcp_status(gw: Gateway, token: str) -> int:
    return httpx.post(gw.streamable_url("currenttime"), json=INIT, timeout=10,
                      headers={**ACCEPT, "authorization": f"Bearer {token}"}).status_code


def test_revoking_a_client_ends_its_token_at_once(pages_gateway, browser_page):
    page = browser_page.page
    signed_in(page, pages_gateway, "cal", "/registry/clients")
    assert page.get_by_text("No authorized clients").is_visible()
    token = _authorize_client(pages_gateway, "cal")
    assert _mcp_status(pages_gateway, token) == 200
    page.reload()
    row = page.get_by_role("row", name="Desk MCP client")
    assert "just now" in row.inner_text()
    with page.expect_navigation():
        row.get_by_role("button", name="Revoke").click()
    assert page.get_by_role("status").inner_text().startswith("The client's access was revoked")
    assert _mcp_status(pages_gateway, token) == 401


def test_every_page_is_accessible_and_pictured(pages_gateway, browser_page):
    page = browser_page.page
    signed_in(page, pages_gateway, "admin")
    token = _authorize_client(pages_gateway, "cal")  # something to show on cal's clients page
    IMAGES.mkdir(parents=True, exist_ok=True)
    shots = {"/": "registry-servers.png", "/registry/servers/currenttime": "registry-server-tools.png",
             "/registry/access": "registry-access.png", "/registry/servers/weather": "registry-server-failing.png"}
    for path, image in shots.items():
        page.goto(f"{pages_gateway.url}{path}")
        assert axe_violations(page) == [], path
        page.screenshot(path=IMAGES / image, full_page=True)
    other = browser_page.page.context.browser.new_context()
    try:
        cal = other.new_page()
        signed_in(cal, pages_gateway, "cal", "/registry/clients")
        assert axe_violations(cal) == []
        cal.screenshot(path=IMAGES / "registry-clients.png", full_page=True)
    finally:
        other.close()
    assert _mcp_status(pages_gateway, token) == 200
    assert browser_page.foreign_requests(pages_gateway.url) == []


def test_pages_read_without_javascript(pages_gateway, chromium):
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        signed_in(page, pages_gateway, "rob", "/registry/access")
        body = page.locator("main").inner_text()
        assert "mcp-user" in body and "mcp:registry:read" in body
        page.goto(f"{pages_gateway.url}/")
        assert "Healthy" in card(page, "currenttime").inner_text()
        assert page.get_by_role("button", name="Copy").count() == 0  # a copy button only where it works
    finally:
        context.close()
