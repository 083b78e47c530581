"""The registry MCP server's `toggle_server` is a registry change (file lock, write, fsync), like
`PATCH /api/servers/{s}`: while another process holds the registry's lock, it must wait in a
thread, never on the proxy's event loop — else one tool call (or a batch of them) stalls every
other request of the gateway for up to LOCK_WAIT each (docs/registry-ui.md)."""

from __future__ import annotations

import fcntl
import threading
import time

import httpx
import pytest

from mcp_gateway.registry import LOCK_WAIT
from tests.support.gateway import run_gateway, server_entry
from tests.support.mcp_clients import ACCEPT
from tests.support.recorder import recording_upstream

pytestmark = pytest.mark.timeout(120)

TOGGLE = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
          "params": {"name": "toggle_server", "arguments": {"server": "recorder", "enabled": False}}}


def test_a_toggle_waiting_for_the_registry_lock_stalls_nothing_else(tmp_path):
    with recording_upstream() as recorder, run_gateway(
            tmp_path, [server_entry("recorder", recorder.url), server_entry("other", recorder.url)],
            env={"MCP_AUTH_ENABLED": "false"}) as gw:
        gw.state_dir.mkdir(parents=True, exist_ok=True)
        with open(gw.state_dir / "registry.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # as another gateway process in the middle of a change
            results: dict[str, httpx.Response] = {}
            toggle = threading.Thread(target=lambda: results.setdefault("toggle", httpx.post(
                gw.streamable_url("registry"), json=TOGGLE, headers=ACCEPT, timeout=LOCK_WAIT + 30)))
            toggle.start()
            time.sleep(0.5)  # let the tool call reach the lock first (a bounded wait follows)
            slowest = 0.0
            for _ in range(5):
                started = time.monotonic()
                ping = httpx.post(gw.streamable_url("other"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                  headers=ACCEPT, timeout=LOCK_WAIT + 30)
                slowest = max(slowest, time.monotonic() - started)
                assert ping.status_code == 200
            assert slowest < 3, f"a ping waited {slowest:.1f} s behind the registry tool call"
            toggle.join(LOCK_WAIT + 30)
            fcntl.flock(lock, fcntl.LOCK_UN)
        answer = results["toggle"].json()
        assert answer["result"]["isError"] is True  # the lock never came: refused, nothing changed
        assert httpx.get(f"{gw.url}/api/servers/recorder", timeout=10).json()["enabled"] is True
