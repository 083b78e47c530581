"""The audit file's disk stalls: requests are still answered at once, and the records arrive
when the disk comes back. The stalled disk is a FIFO nobody reads: opening it for writing
blocks until a reader comes, exactly as a write to a hung network file system would."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from tests.support.gateway import run_gateway, server_entry
from tests.support.recorder import recording_upstream
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def test_requests_are_answered_while_the_audit_disk_is_stalled_and_audited_once_it_recovers(tmp_path):
    stalled = tmp_path / "audit.fifo"
    os.mkfifo(stalled)
    with recording_upstream() as recorder, \
            run_gateway(tmp_path, [server_entry("recorder", recorder.url)], env={"MCP_AUTH_ENABLED": "false"},
                        gateway={"audit_log": str(stalled)}) as gw:
        # Each answer within 5 s while nothing can be written: the old synchronous writer
        # blocked the event loop in open() and every request after the first hung.
        for _ in range(3):
            assert httpx.post(gw.streamable_url("recorder"), json=PING, timeout=5).status_code == 200
        assert httpx.get(f"{gw.url}/healthz", timeout=5).status_code == 200
        assert len(recorder.requests) == 3

        reader = os.open(stalled, os.O_RDONLY | os.O_NONBLOCK)  # the disk recovers
        try:
            received = bytearray()

            def records() -> list[dict]:
                try:
                    received.extend(os.read(reader, 65536))
                except BlockingIOError:
                    pass
                lines = bytes(received).decode().splitlines(keepends=True)
                complete = [json.loads(line) for line in lines if line.endswith("\n")]
                return complete if len(complete) >= 4 else []

            audited = wait_until(records, 10, "the queued audit records reach the file")
        finally:
            os.close(reader)
    assert [(r["http_method"], r["server"], r["status"]) for r in audited] == \
        [("POST", "recorder", 200)] * 3 + [("GET", "-", 200)]
