"""Two SDK clients driven as applications use them, on both transports, with a browser session's
cookie and with OAuth driven headlessly (their auth helpers open tests/clients/browser.py, which
signs in and answers the gateway's consent page):

- the official TypeScript SDK (@modelcontextprotocol/sdk), tests/clients/sdk_client.mjs;
- fastmcp's Python client (PyPI `fastmcp`), tests/clients/fastmcp_client.py.
"""

from __future__ import annotations

import pytest

from .conftest import ALLOWED, REFUSED, cookie_for, names_refused_scope, run_driver, url_of

pytestmark = pytest.mark.timeout(180)
TRANSPORTS = ["streamable", "sse"]
# How each client shows a JSON-RPC error answering its call: the TypeScript SDK throws its McpError
# ("MCP error <code>: <message>"); fastmcp returns the error as the call's result (raise_on_error=False)
# or raises McpError — never a transport failure with a raw body or "403 after trying upscoping".
DRIVERS = {"typescript-sdk": "sdk_client.mjs", "fastmcp": "fastmcp_client.py"}
JSON_RPC_ERROR = {"sdk_client.mjs": lambda refused: refused["error"].startswith("MCP error -32"),
                  "fastmcp_client.py": lambda refused: refused.get("error_type") in {"McpError", "MCPError",
                                                                                    "ToolError", "isError"}}

# How each shows the consent's access_denied (fastmcp words it for the person).
ACCESS_DENIED = {"sdk_client.mjs": "authorization failed: access_denied",
                 "fastmcp_client.py": "Access was denied by the authorization server"}


def assert_allowed_and_refused(driver: str, result: dict) -> None:
    assert result["connect_error"] is None, result
    assert result["tools"] == ["current_time_by_timezone"], result  # tools/list filtered to her tool
    assert result["allowed"]["text"].endswith("+00:00"), result
    refused = result["refused"]
    assert JSON_RPC_ERROR[driver](refused) and names_refused_scope(refused["error"]), result


@pytest.fixture(params=DRIVERS.values(), ids=DRIVERS.keys())
def driver(request) -> str:
    return request.param


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_a_cookie_a_refused_call_is_an_error_naming_the_scope(auth_gateway, driver, transport):
    result = run_driver(driver, {"url": url_of(auth_gateway, transport), "transport": transport,
                                 "cookie": cookie_for(auth_gateway, "tina"), "allowed": ALLOWED, "refused": REFUSED})
    assert_allowed_and_refused(driver, result)
    assert result["browser_opens"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_oauth_a_refused_call_is_an_error_naming_the_scope_without_a_second_consent(auth_gateway, browser_for,
                                                                                          driver, transport):
    browser = browser_for("tina")
    result = run_driver(driver, {"url": url_of(auth_gateway, transport), "transport": transport,
                                 "browser": str(browser.program), "allowed": ALLOWED, "refused": REFUSED})
    assert_allowed_and_refused(driver, result)
    assert result["browser_opens"] == 1, result
    assert browser.outcomes() == [("allow", None, True, None)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_oauth_a_person_without_access_gets_access_denied_once(auth_gateway, browser_for, driver, transport):
    browser = browser_for("bob")
    result = run_driver(driver, {"url": url_of(auth_gateway, transport), "transport": transport,
                                 "browser": str(browser.program), "allowed": ALLOWED})
    assert result["tools"] is None and ACCESS_DENIED[driver] in result["connect_error"], result
    assert result["browser_opens"] == 1, result
    assert browser.outcomes() == [("deny", "access_denied", False, None)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_a_cookie_a_person_without_access_is_refused_at_connect(auth_gateway, driver, transport):
    result = run_driver(driver, {"url": url_of(auth_gateway, transport), "transport": transport,
                                 "cookie": cookie_for(auth_gateway, "bob"), "allowed": ALLOWED})
    assert result["tools"] is None and result["browser_opens"] == 0, result
    # connecting is refused with 403 and a JSON body naming the scope; the SSE transports show
    # only the status of the GET stream
    expected = "mcp:server:currenttime:read" if transport == "streamable" else "403"
    assert expected in result["connect_error"], result
