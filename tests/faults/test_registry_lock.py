"""Another process holding the registry's lock does not stall the gateway: a registry change
waits for the lock in a thread (and gives up with 503 after LOCK_WAIT), while every other
request — MCP traffic, registry reads — is answered at once (mcp_gateway/registry.py)."""

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


def test_a_held_registry_lock_stalls_only_the_change_waiting_for_it(tmp_path):
    with recording_upstream() as recorder, run_gateway(
            tmp_path, [server_entry("recorder", recorder.url), server_entry("other", recorder.url)],
            env={"MCP_AUTH_ENABLED": "false"}) as gw:
        gw.state_dir.mkdir(parents=True, exist_ok=True)
        with open(gw.state_dir / "registry.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # as another gateway process in the middle of a change
            results: dict[str, httpx.Response] = {}
            started = time.monotonic()
            change = threading.Thread(target=lambda: results.setdefault("patch", httpx.patch(
                f"{gw.url}/api/servers/recorder", json={"description": "changed"}, timeout=LOCK_WAIT + 30)))
            change.start()
            for _ in range(5):
                ping = httpx.post(gw.streamable_url("other"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                  headers=ACCEPT, timeout=3)
                assert ping.status_code == 200
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
