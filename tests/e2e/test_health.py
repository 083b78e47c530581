"""Health checks of the registry's servers: a real MCP initialize + tools/list against each
enabled upstream (an `mcp` SDK server on both answer styles, a port nobody listens on, a
plain recorder that is not MCP), kept with its time and shown by the registry API — a failing
server is listed as failing, not hidden — and a tool list that says, per caller, which tools
they may call and which scope would allow the others."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, ACCOUNTS, local_accounts, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.processes import free_port

UPSTREAM_SECRET = "health-check-upstream-secret-value"


@pytest.fixture(scope="module")
def health_gateway(tmp_path_factory, upstream_sse_answers, upstream_json_answers, recorder):
    servers = [
        server_entry("currenttime", upstream_sse_answers.url),
        server_entry("currenttime-json", upstream_json_answers.url),
        server_entry("down", f"http://127.0.0.1:{free_port()}"),
        server_entry("recorder", recorder.url, upstream_header="X-Api-Key", upstream_value_env="MCP_UPSTREAM_HEALTH"),
        server_entry("off", upstream_sse_answers.url, enabled=False),
    ]
    tmp = tmp_path_factory.mktemp("gw-health")
    with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                     gateway={"policy_dir": str(test_policy_dir(tmp)), "health_check_interval": "1s",
                              "health_check_timeout": "3s"},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD,
                          "MCP_UPSTREAM_HEALTH": UPSTREAM_SECRET}) as gw:
        wait_for_login_app(gw)
        yield gw


def _as(gw, user: str) -> dict[str, str]:
    password = ADMIN_PASSWORD if user == "admin" else ACCOUNTS[user][0]
    return cookie_header(login_local(gw.url, user, password))


def _servers_when_checked(gw, headers, names, timeout=30.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        listing = httpx.get(f"{gw.url}/api/servers", headers=headers, timeout=10).json()["servers"]
        by_name = {s["name"]: s for s in listing}
        if all(by_name[n]["health"]["checked_at"] for n in names) or time.monotonic() > deadline:
            return by_name
        time.sleep(0.3)


def test_healthy_and_failing_servers_are_both_listed_with_their_check(health_gateway):
    admin = _as(health_gateway, "admin")
    servers = _servers_when_checked(health_gateway, admin, ["currenttime", "currenttime-json", "down", "recorder"])
    for name in ("currenttime", "currenttime-json"):
        health = servers[name]["health"]
        assert health["status"] == "ok", health
        assert health["tool_count"] >= 1 and health["error"] is None
        assert health["latency_ms"] >= 0 and health["checked_at"] <= time.time()
    down = servers["down"]["health"]
    assert down["status"] == "failing" and down["error"] and down["tool_count"] == 0
    assert servers["recorder"]["health"]["status"] == "failing"  # answers HTTP, but not MCP
    assert servers["off"]["health"]["status"] == "unknown"  # disabled servers are not checked


def test_checks_carry_the_servers_upstream_credential_and_are_repeated(health_gateway, recorder):
    _servers_when_checked(health_gateway, _as(health_gateway, "admin"), ["recorder"])
    checks = [r for r in recorder.requests if r.headers.get("user-agent", "").startswith("mcp-gateway-health")]
    assert checks, "no health check reached the recorder"
    assert all(r.headers.get("x-api-key") == UPSTREAM_SECRET for r in checks)
    first = len(checks)
    deadline = time.monotonic() + 15
    while len([r for r in recorder.requests if r.headers.get("user-agent", "").startswith("mcp-gateway-health")]) <= first:
        assert time.monotonic() < deadline, "the check was not repeated on its interval"
        time.sleep(0.2)
    assert UPSTREAM_SECRET not in health_gateway.log


@pytest.mark.parametrize("user, may_call, needs", [
    ("admin", True, None),
    ("dana", True, None),                       # mcp-server-currenttime: execute
    ("rita", False, "mcp:server:currenttime:tool:current_time_by_timezone:execute"),  # read only
    ("bob", False, "mcp:server:currenttime:tool:current_time_by_timezone:execute"),   # registry read only
])
def test_tool_list_says_who_may_call_what(health_gateway, user, may_call, needs):
    headers = _as(health_gateway, user)
    _servers_when_checked(health_gateway, _as(health_gateway, "admin"), ["currenttime"])
    answer = httpx.get(f"{health_gateway.url}/api/servers/currenttime/tools", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    tools = {t["name"]: t for t in answer.json()["tools"]}
    tool = tools["current_time_by_timezone"]
    assert tool["description"] and tool["inputSchema"]["type"] == "object"
    assert tool["may_call"] is may_call and tool["needs"] == needs


@pytest.mark.parametrize("user, server, status", [
    ("otto", "currenttime", 403),   # toggle on another server only
    ("rita", "recorder", 403),      # read on currenttime only
    ("tina", "currenttime", 403),   # a tool scope lets her call the tool, not read the entry
    ("admin", "nosuch", 404),
])
def test_tool_list_needs_read_on_the_server(health_gateway, user, server, status):
    answer = httpx.get(f"{health_gateway.url}/api/servers/{server}/tools", headers=_as(health_gateway, user), timeout=10)
    assert answer.status_code == status and answer.json()["status"] == status


def test_tool_list_without_credentials_is_401(health_gateway):
    assert httpx.get(f"{health_gateway.url}/api/servers/currenttime/tools", timeout=10).status_code == 401
