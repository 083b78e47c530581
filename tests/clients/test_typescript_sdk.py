"""The official TypeScript SDK client (@modelcontextprotocol/sdk, tests/clients/sdk_client.mjs) on both
transports, with a browser session's cookie and with OAuth driven headlessly (its auth provider opens
tests/clients/browser.py, which signs in and answers the gateway's consent page)."""

from __future__ import annotations

import pytest

from .conftest import ALLOWED, REFUSED, SERVER, cookie_for, names_refused_scope, run_driver

pytestmark = pytest.mark.timeout(180)
TRANSPORTS = ["streamable", "sse"]


def url_of(gateway, transport: str) -> str:
    return gateway.streamable_url(SERVER) if transport == "streamable" else gateway.sse_url(SERVER)


def assert_allowed_and_refused(result: dict) -> None:
    assert result["connect_error"] is None, result
    assert result["tools"] == ["current_time_by_timezone"], result  # tools/list filtered to her tool
    assert result["allowed"]["text"].endswith("+00:00"), result
    message = result["refused"]["error"]
    # the SDK's McpError ("MCP error <code>: <message>"): the JSON-RPC error itself, not a transport
    # failure carrying a raw body, nor "Server returned 403 after trying upscoping"
    assert message.startswith("MCP error -32") and names_refused_scope(message), result


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_a_cookie_a_refused_call_is_an_error_naming_the_scope(auth_gateway, transport):
    result = run_driver("sdk_client.mjs", {"url": url_of(auth_gateway, transport), "transport": transport,
                                           "cookie": cookie_for(auth_gateway, "tina"),
                                           "allowed": ALLOWED, "refused": REFUSED})
    assert_allowed_and_refused(result)
    assert result["browser_opens"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_oauth_a_refused_call_is_an_error_naming_the_scope_without_a_second_consent(auth_gateway, browser_for,
                                                                                          transport):
    browser = browser_for("tina")
    result = run_driver("sdk_client.mjs", {"url": url_of(auth_gateway, transport), "transport": transport,
                                           "browser": str(browser.program),
                                           "allowed": ALLOWED, "refused": REFUSED})
    assert_allowed_and_refused(result)
    assert result["browser_opens"] == 1 and len(browser.opens) == 1, browser.opens
    assert browser.opens[0]["decision"] == "allow" and browser.opens[0]["has_code"], browser.opens


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_oauth_a_person_without_access_gets_access_denied_once(auth_gateway, browser_for, transport):
    browser = browser_for("bob")
    result = run_driver("sdk_client.mjs", {"url": url_of(auth_gateway, transport), "transport": transport,
                                           "browser": str(browser.program), "allowed": ALLOWED})
    assert result["tools"] is None and "access_denied" in result["connect_error"], result
    assert result["browser_opens"] == 1, result
    assert [(o.get("decision"), o.get("error")) for o in browser.opens] == [("deny", "access_denied")], browser.opens


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_a_cookie_a_person_without_access_gets_an_error_naming_the_scope(auth_gateway, transport):
    result = run_driver("sdk_client.mjs", {"url": url_of(auth_gateway, transport), "transport": transport,
                                           "cookie": cookie_for(auth_gateway, "bob"), "allowed": ALLOWED})
    assert result["tools"] is None and result["browser_opens"] == 0, result
    # connecting is refused with 403 and a JSON body naming the scope; the SDK's SSE transport shows
    # only the status of the GET stream, its Streamable HTTP transport the body
    expected = "mcp:server:currenttime:read" if transport == "streamable" else "(403)"
    assert expected in result["connect_error"], result
