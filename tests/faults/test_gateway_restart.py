"""The gateway restarts: what it decided before still holds after — sessions, MCP session
bindings (another identity still cannot take over a session opened before the restart) and
registry changes made at run time."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import DANA_PASSWORD, local_accounts
from tests.faults.conftest import ACCEPT, ADMIN_PASSWORD, INIT, local_gateway
from tests.support.gateway import server_entry
from tests.support.login import cookie_header, login_local

pytestmark = pytest.mark.timeout(120)

PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


def test_sessions_bindings_and_registry_state_survive_a_restart(tmp_path, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url), server_entry("spare", upstream_sse_answers.url)]
    options = dict(auth={"local": local_accounts()}, config_dir=tmp_path / "cfg")
    with local_gateway(tmp_path, servers, **options) as gw:
        admin = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        opened = httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**admin, **ACCEPT}, timeout=10)
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        toggled = httpx.post(f"{gw.url}/api/servers/spare/toggle", json={"enabled": False}, headers=admin, timeout=10)
        assert toggled.status_code == 200
        port = gw.port

    with local_gateway(tmp_path, servers, port=port, **options) as gw:
        url = gw.streamable_url("currenttime")
        dana = cookie_header(login_local(gw.url, "dana", DANA_PASSWORD))  # may use currenttime, not this session
        admin_too = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))  # same identity, new session
        hijack = httpx.post(url, json=PING, headers={**dana, **ACCEPT, **session}, timeout=10)
        assert hijack.status_code == 403 and "another identity" in hijack.json()["message"]
        assert httpx.post(url, json=PING, headers={**admin, **ACCEPT, **session}, timeout=10).status_code == 200
        assert httpx.post(url, json=PING, headers={**admin_too, **ACCEPT, **session}, timeout=10).status_code == 200
        assert httpx.post(gw.streamable_url("spare"), json=INIT, headers={**admin, **ACCEPT},
                          timeout=10).status_code == 503
