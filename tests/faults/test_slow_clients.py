"""Slow and stalled clients (slowloris): a connection that stops sending is closed after the
configured idle time, what it sent never reaches an upstream, and while many of them hang on,
everyone else is served at once."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.faults.conftest import STREAM_IDLE_SECONDS

pytestmark = pytest.mark.timeout(60)

PARTIALS = {
    "half a request line": b"POST /api/streamable/rec",
    "half the headers": b"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\nContent-Le",
    "half the body": b"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":",
}


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass  # a 408 or similar answer is fine; what matters is the close
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_stalled_connections_are_closed_and_never_block_anyone(open_fault_gateway):
    gw, _, _, recorder = open_fault_gateway
    before = len(recorder.requests)
    stalled: list[tuple[str, socket.socket]] = []
    try:
        for name, partial in PARTIALS.items():
            for _ in range(20):
                sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
                sock.sendall(partial)
                stalled.append((name, sock))
        opened = time.monotonic()
        for _ in range(5):  # meanwhile, normal requests are answered at once
            started = time.monotonic()
            response = httpx.post(gw.streamable_url("recorder"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                  timeout=10)
            assert response.status_code == 200 and time.monotonic() - started < 2
        for name, sock in stalled:
            remaining = STREAM_IDLE_SECONDS + 10 - (time.monotonic() - opened)
            assert _closed_within(sock, max(remaining, 0.1)), f"a connection stalled at {name} stayed open"
    finally:
        for _, sock in stalled:
            sock.close()
    assert len(recorder.requests) == before + 5, "a partial request reached the upstream"


def test_a_trickling_client_cannot_hold_a_decision_open(open_fault_gateway):
    """A body sent a byte at a time is only forwarded once complete, and then whole."""
    gw, _, _, recorder = open_fault_gateway
    body = b'{"jsonrpc":"2.0","id":7,"method":"ping"}'
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(b"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        before = len(recorder.requests)
        for i in range(0, len(body), 8):
            sock.sendall(body[i:i + 8])
            time.sleep(0.2)
            if i + 8 < len(body):
                assert len(recorder.requests) == before, "forwarded before the body was complete"
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200")
    assert recorder.requests[-1].body == body
