"""A server named `registry` in gateway.toml takes the name from the built-in registry MCP
server (docs/registry-ui.md): every request to `/api/{streamable,execute}/registry` then goes
to that upstream, decided by the same scopes as any server — never answered by the built-in
one, never half by each. Real gateway, the recording upstream behind `registry`."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.accounts import account_hash
from tests.e2e.conftest import ADMIN_PASSWORD, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT

pytestmark = pytest.mark.timeout(120)

PASSWORD = "clash-password-for-tests"
POLICY = '[groups]\n"lister" = ["mcp:server:registry:tool:list_servers:execute"]\n'


def _call(tool: str, arguments: dict) -> dict:
    return {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


@pytest.fixture(scope="module")
def clash(tmp_path_factory, recorder):
    tmp = tmp_path_factory.mktemp("gw-clash")
    policies = test_policy_dir(tmp)
    (policies / "60-clash.toml").write_text(POLICY)
    accounts = [{"username": "lou", "password_hash": account_hash(PASSWORD), "groups": ["lister"]}]
    with run_gateway(tmp, [server_entry("registry", recorder.url)],
                     auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                     gateway={"policy_dir": str(policies)},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


def test_the_configured_server_answers_not_the_built_in_one(clash, recorder):
    admin = cookie_header(login_local(clash.url, "admin", ADMIN_PASSWORD))
    before = len(recorder.requests)
    answer = httpx.post(clash.streamable_url("registry"), json=_call("toggle_server", {"server": "registry",
                                                                                      "enabled": False}),
                        headers={**admin, **ACCEPT}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["result"] == {"path": "/mcp"}  # the recorder's answer, not a registry tool result
    assert len(recorder.requests) == before + 1
    assert httpx.get(f"{clash.url}/api/servers/registry", headers=admin, timeout=10).json()["enabled"] is True


@pytest.mark.parametrize("tool", ["toggle_server", "get_server_tools", "anything_else"])
def test_a_tool_scope_on_registry_is_a_scope_on_the_configured_server(clash, recorder, tool):
    lou = cookie_header(login_local(clash.url, "lou", PASSWORD))
    before = len(recorder.requests)
    answer = httpx.post(clash.streamable_url("registry"), json=_call(tool, {"server": "registry"}),
                        headers={**lou, **ACCEPT}, timeout=10)
    assert answer.status_code == 200 and "error" in answer.json(), answer.text
    assert "mcp:server:registry" in json.dumps(answer.json())
    assert len(recorder.requests) == before  # refused before the upstream
    allowed = httpx.post(clash.streamable_url("registry"), json=_call("list_servers", {}),
                         headers={**lou, **ACCEPT}, timeout=10)
    assert allowed.status_code == 200 and len(recorder.requests) == before + 1
