"""Rate limits (`[rate_limits]`, docs/rate-limits.md) with real gateways: per identity and
server, 429 + Retry-After + a JSON body; in Redis they hold across instances, with the SQLite
store they are per process."""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.support.gateway import Gateway, run_gateway, server_entry
from tests.support.waiting import wait_until
from tests.support.redis_server import redis_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(120)

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
OPEN = {"MCP_AUTH_ENABLED": "false"}


def post_ping(client: httpx.Client, gw: Gateway, server: str) -> httpx.Response:
    return client.post(gw.streamable_url(server), json=PING, headers={"accept": "application/json, text/event-stream"})


def assert_rate_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    seconds = int(answer.headers["retry-after"])
    assert seconds >= 1
    body = answer.json()
    assert body["error"] == "too_many_requests" and body["retry_after"] == seconds
    assert "rate limit" in body["message"]


def test_requests_per_second_per_identity_and_server(tmp_path, recorder):
    servers = [server_entry("rec", recorder.url), server_entry("rec2", recorder.url)]
    limits = {"rate_limits": {"requests_per_second": 1, "burst": 3}}
    with run_gateway(tmp_path, servers, env=OPEN, sections=limits) as gw, httpx.Client(timeout=10) as client:
        started = time.monotonic()
        answers = [post_ping(client, gw, "rec") for _ in range(8)]
        elapsed = time.monotonic() - started
        allowed = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code != 200]
        assert 3 <= len(allowed) <= 3 + int(elapsed) + 1, [a.status_code for a in answers]
        assert refused
        for answer in refused:
            assert_rate_limited(answer)
        # another server has its own bucket
        assert post_ping(client, gw, "rec2").status_code == 200
        # after Retry-After, the caller may go on
        time.sleep(int(refused[-1].headers["retry-after"]))
        assert post_ping(client, gw, "rec").status_code == 200
        # other paths are not counted: the registry, health
        assert client.get(f"{gw.url}/healthz").status_code == 200
        assert "rate limit: anonymous on rec over 1 requests/s" in gw.log


def test_sqlite_store_limits_count_per_process(tmp_path, recorder):
    """The documented difference: without Redis, each instance has its own counts."""
    limits = {"rate_limits": {"requests_per_second": 0.1, "burst": 2}}
    with ExitStack() as stack, httpx.Client(timeout=10) as client:
        gateways = [stack.enter_context(run_gateway(tmp_path / f"gw{i}", [server_entry("rec", recorder.url)],
                                                    env=OPEN, sections=limits)) for i in range(2)]
        codes = [post_ping(client, gw, "rec").status_code for gw in gateways for _ in range(3)]
        assert codes == [200, 200, 429, 200, 200, 429]


def test_limits_hold_across_instances_with_redis(tmp_path, recorder, redis_server):
    limits = {"rate_limits": {"requests_per_second": 0.2, "burst": 4}}
    session = {"store": redis_server.url}
    with ExitStack() as stack, httpx.Client(timeout=10) as client:
        gateways = [stack.enter_context(run_gateway(tmp_path / f"gw{i}", [server_entry("rec", recorder.url)],
                                                    env=OPEN, session=session, sections=limits)) for i in range(3)]
        started = time.monotonic()
        answers = [(gw, post_ping(client, gw, "rec")) for _ in range(4) for gw in gateways]
        elapsed = time.monotonic() - started
        allowed = [gw for gw, a in answers if a.status_code == 200]
        # 4 at once, then one per 5 s — together, whichever instance is asked (per process: 12)
        assert 4 <= len(allowed) <= 4 + int(elapsed / 5) + 1, [a.status_code for _, a in answers]
        for _, answer in answers:
            if answer.status_code != 200:
                assert_rate_limited(answer)
        assert {gw.port for gw, a in answers if a.status_code == 429} == {gw.port for gw in gateways}


class HeldStream:
    """A GET event stream on a plain socket: held open until close(), which drops it at once."""

    def __init__(self, gw: Gateway, server: str):
        self.sock = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
        self.sock.sendall(f"GET /api/execute/{server}/sse HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None

    def close(self) -> None:
        self.sock.close()


def test_concurrent_streams_are_limited_across_instances(tmp_path, upstream_sse_answers, redis_server):
    limits = {"rate_limits": {"concurrent_streams": 1}}
    session = {"store": redis_server.url}
    server = [server_entry("clock", upstream_sse_answers.url)]
    with ExitStack() as stack:
        first, second = [stack.enter_context(run_gateway(tmp_path / f"gw{i}", server, env=OPEN, session=session,
                                                         sections=limits)) for i in range(2)]
        held = HeldStream(first, "clock")
        assert held.status == 200
        with httpx.Client(timeout=10) as client:
            refused = client.get(second.sse_url("clock"), headers={"accept": "text/event-stream"})
            assert_rate_limited(refused)
            assert "at most 1 open streams" in refused.json()["message"]
            # requests that are not streams are not counted against the streams
            assert post_ping(client, second, "clock").status_code != 429
        held.close()  # the stream ends: its lease is given back, for every instance

        def second_stream_opens() -> bool:
            stream = HeldStream(second, "clock")
            stream.close()
            return stream.status == 200

        wait_until(second_stream_opens, timeout=20, message="a stream opens once the first one ended")
