"""Another process holding the registry's lock does not stall the gateway: a registry change —
`PATCH /api/servers/{s}`, or the registry MCP server's `toggle_server` tool — waits for the lock
in a thread (and gives up after LOCK_WAIT), while every other request — MCP traffic, registry
reads — is answered at once (mcp_gateway/registry.py, docs/registry-ui.md)."""

from __future__ import annotations

import fcntl
import threading
import time
from contextlib import contextmanager
from typing import IO, Iterator

import httpx
import pytest

from mcp_gateway.registry import LOCK_WAIT
from tests.support.gateway import Gateway, run_gateway, server_entry
from tests.support.mcp_clients import ACCEPT
from tests.support.recorder import recording_upstream

pytestmark = pytest.mark.timeout(120)

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
TOGGLE = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
          "params": {"name": "toggle_server", "arguments": {"server": "recorder", "enabled": False}}}


@contextmanager
def locked_registry(tmp_path) -> Iterator[tuple[Gateway, IO[str]]]:
    """A gateway with two servers whose registry lock is held, as by another gateway process in
    the middle of a change; yields the gateway and the held lock file."""
    with recording_upstream() as recorder, run_gateway(
            tmp_path, [server_entry("recorder", recorder.url), server_entry("other", recorder.url)],
            env={"MCP_AUTH_ENABLED": "false"}) as gw:
        gw.state_dir.mkdir(parents=True, exist_ok=True)
        with open(gw.state_dir / "registry.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield gw, lock


def in_a_thread(results: dict[str, httpx.Response], name: str, send) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.setdefault(name, send()))
    thread.start()
    return thread


def test_a_held_registry_lock_stalls_only_the_change_waiting_for_it(tmp_path):
    with locked_registry(tmp_path) as (gw, lock):
        results: dict[str, httpx.Response] = {}
        started = time.monotonic()
        change = in_a_thread(results, "patch", lambda: httpx.patch(
            f"{gw.url}/api/servers/recorder", json={"description": "changed"}, timeout=LOCK_WAIT + 30))
        for _ in range(5):
            assert httpx.post(gw.streamable_url("other"), json=PING, headers=ACCEPT, timeout=3).status_code == 200
            assert httpx.get(f"{gw.url}/api/servers/recorder", timeout=3).json()["description"] == ""
        assert change.is_alive(), "the change should still be waiting for the lock"
        change.join(LOCK_WAIT + 30)
        waited = time.monotonic() - started
        assert results["patch"].status_code == 503 and results["patch"].json()["message"]
        assert LOCK_WAIT - 1 <= waited <= LOCK_WAIT + 15
        fcntl.flock(lock, fcntl.LOCK_UN)
        changed = httpx.patch(f"{gw.url}/api/servers/recorder", json={"description": "changed"}, timeout=10)
        assert changed.status_code == 200 and changed.json()["description"] == "changed"
        assert "Traceback" not in gw.log


def test_a_toggle_tool_waiting_for_the_registry_lock_stalls_nothing_else(tmp_path):
    with locked_registry(tmp_path) as (gw, lock):
        results: dict[str, httpx.Response] = {}
        toggle = in_a_thread(results, "toggle", lambda: httpx.post(
            gw.streamable_url("registry"), json=TOGGLE, headers=ACCEPT, timeout=LOCK_WAIT + 30))
        time.sleep(0.5)  # let the tool call reach the lock first (a bounded wait follows)
        slowest = 0.0
        for _ in range(5):
            started = time.monotonic()
            ping = httpx.post(gw.streamable_url("other"), json=PING, headers=ACCEPT, timeout=LOCK_WAIT + 30)
            slowest = max(slowest, time.monotonic() - started)
            assert ping.status_code == 200
        assert slowest < 3, f"a ping waited {slowest:.1f} s behind the registry tool call"
        toggle.join(LOCK_WAIT + 30)
        fcntl.flock(lock, fcntl.LOCK_UN)
        assert results["toggle"].json()["result"]["isError"] is True  # the lock never came: refused, unchanged
        assert httpx.get(f"{gw.url}/api/servers/recorder", timeout=10).json()["enabled"] is True
