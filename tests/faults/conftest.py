"""Gateways for the fault tests, each with the configuration its faults need. Fault tests stop,
kill, pause and lock things: they never share a gateway with the tests of other folders."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, upstream_sse_answers, wait_for_login_app  # noqa: F401  (fixture)
from tests.support.gateway import Gateway, run_gateway, server_entry
from tests.support.processes import Process, free_port, wait_for_port
from tests.support.recorder import recording_upstream

ADMIN_ENV = {"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}
STREAM_IDLE_SECONDS = 5


class Upstream:
    """A demo MCP server on a fixed port that a test may kill and start again."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name, self.port = directory, name, free_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = Process([sys.executable, "-m", "demo.currenttime", "--port", str(self.port), "--name", self.name],
                               self.directory / f"upstream-{self.name}.log")
        wait_for_port(self.port, self.process.proc, 30, self.process.log_path)

    def kill(self) -> None:
        assert self.process is not None
        self.process.proc.kill()
        self.process.proc.wait(5)
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture(scope="session")
def open_fault_gateway(tmp_path_factory) -> Iterator[tuple[Gateway, Upstream, Upstream, object]]:
    """Authentication off; servers `dying` (killed and restarted by tests), `steady` and `recorder`;
    streams and connections idle for STREAM_IDLE_SECONDS are closed."""
    tmp = tmp_path_factory.mktemp("gw-faults-open")
    dying, steady = Upstream(tmp, "dying"), Upstream(tmp, "steady")
    dying.start()
    steady.start()
    try:
        with recording_upstream() as recorder:
            servers = [server_entry("dying", dying.url), server_entry("steady", steady.url),
                       server_entry("recorder", recorder.url)]
            with run_gateway(tmp, servers, env={"MCP_AUTH_ENABLED": "false"},
                             gateway={"stream_idle_timeout": f"{STREAM_IDLE_SECONDS}s"}) as gw:
                yield gw, dying, steady, recorder
    finally:
        dying.stop()
        steady.stop()


@contextmanager
def local_gateway(tmp: Path, servers: list[dict], **options) -> Iterator[Gateway]:
    """A gateway with a local administrator (ADMIN_USER), its login app up."""
    auth = {"enabled": True, "provider_type": "local", **options.pop("auth", {})}
    with run_gateway(tmp, servers, auth=auth, env={**ADMIN_ENV, **options.pop("env", {})}, **options) as gw:
        wait_for_login_app(gw)
        yield gw


def login_app_pids(gw: Gateway) -> list[int]:
    return [int(pid) for pid in re.findall(r"login app started \(pid (\d+)\)", gw.log)]


def status_of(method: str, url: str, **kwargs) -> int:
    try:
        return httpx.request(method, url, timeout=kwargs.pop("timeout", 15), **kwargs).status_code
    except httpx.HTTPError:
        return 0
