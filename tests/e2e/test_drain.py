"""Graceful shutdown (addons/drain.py): SIGTERM stops accepting, /healthz answers 503, requests
in flight finish, event streams end cleanly, and the process exits 0 — under the launcher with
workers, and under mitmdump with the gateway script."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from tests.support.gateway import Gateway, run_gateway, server_entry
from tests.support.launcher import run_launcher, wait_for_log
from tests.support.waiting import wait_until
from tests.support.mcp_clients import ACCEPT, INIT
from tests.support.upstreams import mcp_upstream

pytestmark = pytest.mark.timeout(120)

COUNTDOWN_STEPS = 4  # one second each: the request in flight when SIGTERM arrives


def initialized_session(client: httpx.Client, url: str) -> dict[str, str]:
    answer = client.post(url, json=INIT, headers=ACCEPT)
    assert answer.status_code == 200, answer.text
    headers = {**ACCEPT, "mcp-session-id": answer.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


class SlowCall:
    """A tools/call of the upstream's `countdown` tool, read as its SSE answer arrives: `started`
    is set at the first progress event, so the test knows the request is in flight."""

    def __init__(self, gw: Gateway):
        self.url = gw.streamable_url("clock")
        self.started = threading.Event()
        self.events: list[dict] = []
        self.error: BaseException | None = None
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=30) as client:
                headers = initialized_session(client, self.url)
                call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                    "name": "countdown", "arguments": {"steps": COUNTDOWN_STEPS, "interval": 1.0},
                    "_meta": {"progressToken": "p"}}}
                with client.stream("POST", self.url, json=call, headers=headers) as answer:
                    self.status = answer.status_code
                    for line in answer.iter_lines():
                        if line.startswith("data:"):
                            self.events.append(json.loads(line[5:]))
                            self.started.set()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
            self.started.set()

    def result(self, timeout: float = 30) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the slow call did not finish"
        assert self.error is None, f"the request in flight failed: {self.error!r}"
        assert self.status == 200
        final = [e for e in self.events if e.get("id") == 7]
        assert final, self.events
        return final[0]


class SseStream:
    """An open SSE transport stream (GET /api/execute/{s}/sse); `ended_cleanly` says whether it
    ended as a complete HTTP answer rather than by a broken connection."""

    def __init__(self, gw: Gateway):
        self.url = gw.sse_url("clock")
        self.opened = threading.Event()
        self.ended_cleanly: bool | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(30, read=60)) as client:
                with client.stream("GET", self.url, headers={"accept": "text/event-stream"}) as answer:
                    for line in answer.iter_lines():
                        if line.startswith("event: endpoint"):
                            self.opened.set()
            self.ended_cleanly = True
        except BaseException as e:  # noqa: BLE001
            self.error = e
            self.ended_cleanly = False
        finally:
            self.opened.set()

    def wait_ended(self, timeout: float = 40) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream was not ended"


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def clock_upstream(tmp_path) -> Iterator[str]:
    with mcp_upstream(tmp_path, name="clock") as upstream:
        yield upstream.url


def test_sigterm_to_the_launcher_drains_its_workers_and_exits_0(tmp_path):
    with clock_upstream(tmp_path) as url, \
            run_launcher(tmp_path, [server_entry("clock", url)], workers=2,
                         gateway={"drain_timeout": "20s"}) as gw:
        streams = [SseStream(gw) for _ in range(3)]  # spread over both workers
        for stream in streams:
            assert stream.opened.wait(20) and stream.error is None, stream.error
        slow = SlowCall(gw)
        assert slow.started.wait(20) and slow.error is None, slow.error
        drain_started = time.monotonic()
        os.kill(gw.process.proc.pid, signal.SIGTERM)

        # No new connections while the request in flight still runs.
        wait_until(lambda: refuses_connections(gw.port), timeout=5, message="the port refuses new connections")
        assert slow.thread.is_alive(), "the slow call should still be running when the listener is gone"

        final = slow.result()
        assert final["result"]["content"][0]["text"] == f"counted {COUNTDOWN_STEPS} steps"
        for stream in streams:
            stream.wait_ended()
            assert stream.ended_cleanly, f"stream broken instead of ended: {stream.error!r}"
        assert gw.process.proc.wait(30) == 0
        assert time.monotonic() - drain_started < 20, "drained only at the timeout: something was left open"
        log = gw.log
        assert log.count("drained; stopping") == 2, log[-3000:]
        assert "Traceback" not in log and "still open after drain_timeout" not in log


def test_sigterm_to_mitmdump_answers_healthz_503_then_finishes_the_request_in_flight(tmp_path):
    with clock_upstream(tmp_path) as url, run_gateway(tmp_path, [server_entry("clock", url)]) as gw:
        with httpx.Client(timeout=10) as kept_alive:
            ok = kept_alive.get(f"{gw.url}/healthz")
            assert ok.status_code == 200 and ok.json()["status"] == "ok"
            assert len(ok.json()["policy_version"]) == 16
            stream = SseStream(gw)
            assert stream.opened.wait(20) and stream.error is None
            slow = SlowCall(gw)
            assert slow.started.wait(20) and slow.error is None, slow.error
            os.kill(gw.process.proc.pid, signal.SIGTERM)
            wait_for_log(gw, "draining: stopped listening")

            # The connection opened before the drain still answers: 503, and it is closed after.
            draining = kept_alive.get(f"{gw.url}/healthz")
            assert draining.status_code == 503, draining.text
            assert draining.json()["status"] == "draining"
            assert draining.headers["connection"] == "close"
            assert refuses_connections(gw.port)

            assert slow.result()["result"]["content"][0]["text"] == f"counted {COUNTDOWN_STEPS} steps"
            stream.wait_ended()
            assert stream.ended_cleanly, f"stream broken instead of ended: {stream.error!r}"
        assert gw.process.proc.wait(30) == 0


def test_drain_timeout_bounds_a_request_that_does_not_finish(tmp_path):
    with clock_upstream(tmp_path) as url, \
            run_gateway(tmp_path, [server_entry("clock", url)], gateway={"drain_timeout": "1s"}) as gw:
        slow = SlowCall(gw)
        assert slow.started.wait(20) and slow.error is None, slow.error
        started = time.monotonic()
        os.kill(gw.process.proc.pid, signal.SIGTERM)
        assert gw.process.proc.wait(30) == 0
        assert time.monotonic() - started < COUNTDOWN_STEPS - 0.5, "it waited for the request, not drain_timeout"
        slow.thread.join(10)
        assert slow.error is not None or not [e for e in slow.events if e.get("id") == 7]
        assert "still open after drain_timeout (1s)" in gw.log


def test_sigterm_to_every_process_of_the_service_still_drains(tmp_path):
    """systemd's default KillMode signals every process at once, and the launcher then signals
    its workers again: the second SIGTERM must not cut the drain short."""
    with clock_upstream(tmp_path) as url, \
            run_launcher(tmp_path, [server_entry("clock", url)], workers=2) as gw:
        slow = SlowCall(gw)
        assert slow.started.wait(20) and slow.error is None, slow.error
        os.killpg(gw.process.proc.pid, signal.SIGTERM)
        assert slow.result()["result"]["content"][0]["text"] == f"counted {COUNTDOWN_STEPS} steps"
        assert gw.process.proc.wait(30) == 0
        assert gw.log.count("drained; stopping") == 2
