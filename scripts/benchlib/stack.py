"""Starts what one benchmark run measures, on loopback ports picked at run time:

- two demo MCP servers: JSON answers (throughput) and SSE answers with the stamped countdown (streams);
- the gateway (`mitmdump -s addons/gateway.py`) with auth on and a logged-in local admin;
- a plain mitmproxy reverse proxy (responses streamed, no gateway addons) as a second baseline.

Every process is stopped when the context exits.
"""

from __future__ import annotations

import secrets
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.e2e.conftest import wait_for_login_app
from tests.support.gateway import Gateway, mitmdump_args, server_entry, write_config
from tests.support.login import cookie_header, login_local
from tests.support.processes import VENV_BIN, Process, free_port, wait_for_port

JSON_SERVER = "currenttime-json"
SSE_SERVER = "currenttime"
ADMIN_USER = "admin"
START_TIMEOUT = 40.0


@dataclass(frozen=True)
class Target:
    """One way to reach the upstreams: directly, through plain mitmproxy, or through the gateway."""
    name: str
    json_url: str          # Streamable HTTP endpoint whose POST answers are JSON
    streamable_url: str    # Streamable HTTP endpoint whose POST answers are SSE streams
    sse_url: str           # the SSE transport's event stream
    headers: dict[str, str] = field(default_factory=dict)
    proxy_pid: int | None = None


@dataclass
class Stack:
    targets: list[Target]
    json_upstream_pid: int   # the upstream the throughput phase loads


def _upstream(work: Path, module: str, name: str, port: int, json_response: bool) -> Process:
    args = [sys.executable, "-m", module, "--port", str(port), "--name", name]
    if json_response:
        args.append("--json-response")
    return Process(args, work / f"upstream-{name}.log")


def _plain_proxy(work: Path, json_upstream: int, sse_upstream: int, json_port: int, sse_port: int) -> Process:
    return Process([
        str(VENV_BIN / "mitmdump"), "-s", str(Path(__file__).with_name("plain_proxy_addon.py")),
        "--mode", f"reverse:http://127.0.0.1:{json_upstream}@127.0.0.1:{json_port}",
        "--mode", f"reverse:http://127.0.0.1:{sse_upstream}@127.0.0.1:{sse_port}",
        "--set", "connection_strategy=lazy", "--set", f"confdir={work / 'plain-confdir'}",
    ], work / "plain-mitmproxy.log")


def _gateway(work: Path, port: int, json_upstream: int, sse_upstream: int, password: str,
             profile: Path | None) -> Gateway:
    servers = [server_entry(JSON_SERVER, f"http://127.0.0.1:{json_upstream}"),
               server_entry(SSE_SERVER, f"http://127.0.0.1:{sse_upstream}")]
    config = write_config(work, port, servers, auth={"enabled": True, "provider_type": "local"})
    args = mitmdump_args(config)
    if profile is not None:
        args = [sys.executable, "-m", "cProfile", "-o", str(profile)] + args
    env = {"HOME": str(work), "SECRET_KEY": secrets.token_urlsafe(48),
           "ADMIN_USER": ADMIN_USER, "ADMIN_PASSWORD": password}
    return Gateway(port, config, work / "state", Process(args, work / "gateway.log", env=env))


@contextmanager
def running_stack(work: Path, *, profile: Path | None = None) -> Iterator[Stack]:
    json_up, sse_up, plain_json, plain_sse, gateway_port = (free_port() for _ in range(5))
    password = secrets.token_urlsafe(16)
    with ExitStack() as cleanup:
        def start(process: Process, *ports: int) -> Process:
            cleanup.callback(process.stop)
            waiting.extend((process, port) for port in ports)
            return process

        waiting: list[tuple[Process, int]] = []
        # Upstreams first, so they are stopped last.
        json_upstream = start(_upstream(work, "demo.currenttime", JSON_SERVER, json_up, json_response=True), json_up)
        start(_upstream(work, "scripts.benchlib.stamped_server", SSE_SERVER, sse_up, json_response=False), sse_up)
        plain = start(_plain_proxy(work, json_up, sse_up, plain_json, plain_sse), plain_json, plain_sse)
        gateway = _gateway(work, gateway_port, json_up, sse_up, password, profile)
        start(gateway.process, gateway_port)
        for process, port in waiting:
            wait_for_port(port, process.proc, START_TIMEOUT, process.log_path)
        wait_for_login_app(gateway, START_TIMEOUT)
        cookie = cookie_header(login_local(gateway.url, ADMIN_USER, password))
        targets = [
            Target("direct", f"http://127.0.0.1:{json_up}/mcp", f"http://127.0.0.1:{sse_up}/mcp",
                   f"http://127.0.0.1:{sse_up}/sse"),
            Target("mitmproxy", f"http://127.0.0.1:{plain_json}/mcp", f"http://127.0.0.1:{plain_sse}/mcp",
                   f"http://127.0.0.1:{plain_sse}/sse", proxy_pid=plain.proc.pid),
            Target("gateway", gateway.streamable_url(JSON_SERVER), gateway.streamable_url(SSE_SERVER),
                   gateway.sse_url(SSE_SERVER), headers=cookie, proxy_pid=gateway.process.proc.pid),
        ]
        yield Stack(targets, json_upstream.proc.pid)

