"""Starts what one benchmark run measures, on loopback ports picked at run time:

- two upstreams: the light one (JSON answers for the throughput phase, idle SSE streams for the
  memory phase) and the demo MCP server with the stamped countdown (event delays, first events);
- nginx in front of both (the floor), when installed;
- the gateway three ways — stock `mitmdump -s addons/gateway.py`, and the production launcher
  (`python -m addons.launcher run`) with 1 and with 2 workers — each with auth on, its own state
  folder and session store, and a logged-in local account whose groups grant per-server scopes
  (so every call goes through the policy's scope resolution and the JSON-RPC inspection);
- optionally mitmproxy's floor: the launcher's lean master without the gateway's addons.

Every process is stopped when the context exits.
"""

from __future__ import annotations

import logging
import secrets
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mcp_gateway.passwords import hash_password
from tests.support.gateway import Gateway, mitmdump_args, server_entry, write_config
from tests.support.launcher import launcher_args, wait_for_log
from tests.support.login import cookie_header, login_local, wait_for_login_app
from tests.support.processes import Process, free_port, wait_for_port

from .nginx import nginx_binary, start_nginx
from .plan import Plan

log = logging.getLogger(__name__)

LIGHT_SERVER = "light"      # the light upstream: throughput and idle streams
STAMPED_SERVER = "stamped"  # the SDK server with the stamped countdown: event delays
BENCH_USER = "bench"
# Per-server groups, not the administrator's mcp:registry:admin: each call's scope is resolved
# from the policy's pattern rules against the registry, as for an ordinary user.
BENCH_GROUPS = [f"mcp-server-{LIGHT_SERVER}", f"mcp-server-{STAMPED_SERVER}"]
START_TIMEOUT = 60.0
GATEWAYS = {"mitmdump": None, "launcher-1": 1, "launcher-2": 2}  # name -> launcher workers (None: mitmdump -s)
PROFILED = "launcher-1"   # the production set-up, one process: what --profile looks into


@dataclass(frozen=True)
class Target:
    """One way to reach the upstreams: directly, through nginx, mitmproxy or a gateway."""
    name: str
    json_url: str          # light upstream, Streamable HTTP with JSON answers
    idle_sse_url: str      # light upstream, SSE stream that stays idle after its endpoint event
    streamable_url: str    # stamped upstream, Streamable HTTP with SSE answers
    sse_url: str           # stamped upstream, the SSE transport's event stream
    headers: dict[str, str] = field(default_factory=dict)
    proxy_pid: int | None = None
    idle_memory: bool = False   # measured in the idle-streams phase
    profiled: bool = False      # runs under scripts.benchlib.profiled_launcher: SIGUSR1/SIGUSR2 switch it


@dataclass
class Stack:
    targets: list[Target]
    json_upstream_pid: int   # the upstream the throughput phase loads
    skipped: list[str] = field(default_factory=list)   # rows left out, and why


def _upstream(work: Path, name: str, port: int, *args: str) -> Process:
    return Process([sys.executable, "-m", *args, "--port", str(port)], work / f"upstream-{name}.log")


def _gateway_process(work: Path, name: str, workers: int | None, light: int, stamped: int, password: str,
                     profile: Path | None) -> Gateway:
    directory = work / name
    directory.mkdir()
    port = free_port()
    servers = [server_entry(LIGHT_SERVER, f"http://127.0.0.1:{light}"),
               server_entry(STAMPED_SERVER, f"http://127.0.0.1:{stamped}")]
    account = {"username": BENCH_USER, "password_hash": hash_password(password), "groups": BENCH_GROUPS}
    config = write_config(directory, port, servers,
                          auth={"enabled": True, "provider_type": "local", "local": {"accounts": [account]}})
    args = mitmdump_args(config) if workers is None else launcher_args(config, workers)
    if profile is not None:
        assert workers is not None, "only the launcher is profiled"
        args = [sys.executable, "-m", "scripts.benchlib.profiled_launcher", str(profile), *args[3:]]
    env = {"HOME": str(directory), "SECRET_KEY": secrets.token_urlsafe(48)}
    return Gateway(port, config, directory / "state", Process(args, directory / "gateway.log", env=env))


def _lean_mitmproxy(work: Path, routes: dict[int, int]) -> Process:
    modes = [arg for listen, upstream in routes.items()
             for arg in ("--mode", f"reverse:http://127.0.0.1:{upstream}@127.0.0.1:{listen}")]
    return Process([sys.executable, "-m", "scripts.benchlib.lean_mitmproxy", "--confdir", str(work / "lean-confdir"),
                    *modes], work / "lean-mitmproxy.log")


def _proxied(name: str, json_port: int, stamped_port: int, pid: int) -> Target:
    light, stamped = f"http://127.0.0.1:{json_port}", f"http://127.0.0.1:{stamped_port}"
    return Target(name, f"{light}/mcp", f"{light}/sse", f"{stamped}/mcp", f"{stamped}/sse", proxy_pid=pid,
                  idle_memory=True)


def _through_gateway(name: str, gateway: Gateway, headers: dict[str, str], profiled: bool) -> Target:
    return Target(name, gateway.streamable_url(LIGHT_SERVER), gateway.sse_url(LIGHT_SERVER),
                  gateway.streamable_url(STAMPED_SERVER), gateway.sse_url(STAMPED_SERVER), headers=headers,
                  proxy_pid=gateway.process.proc.pid, idle_memory=name in ("mitmdump", "launcher-1"),
                  profiled=profiled)


@contextmanager
def running_stack(work: Path, plan: Plan, *, profile: Path | None = None) -> Iterator[Stack]:
    """`profile`: run launcher-1 under cProfile (switched on only while it is loaded), writing there."""
    light, stamped = free_port(), free_port()
    password = secrets.token_urlsafe(16)
    skipped: list[str] = []
    with ExitStack() as cleanup:
        waiting: list[tuple[Process, int]] = []

        def start(process: Process, *ports: int) -> Process:
            cleanup.callback(process.stop)
            waiting.extend((process, port) for port in ports)
            return process

        # Upstreams first, so they are stopped last.
        light_upstream = start(_upstream(work, LIGHT_SERVER, light, "scripts.benchlib.light_upstream"), light)
        start(_upstream(work, STAMPED_SERVER, stamped, "scripts.benchlib.stamped_server", "--name", STAMPED_SERVER),
              stamped)
        proxied: list[tuple[str, Process, int, int]] = []
        binary = nginx_binary()
        if binary is None:
            skipped.append("nginx: not installed (Debian: apt-get install nginx); its row is skipped")
            log.warning(skipped[-1])
        else:
            ports = free_port(), free_port()
            nginx = start(start_nginx(binary, work, {ports[0]: light, ports[1]: stamped}), *ports)
            proxied.append(("nginx", nginx, *ports))
        if plan.lean_mitmproxy:
            ports = free_port(), free_port()
            lean = start(_lean_mitmproxy(work, {ports[0]: light, ports[1]: stamped}), *ports)
            proxied.append(("mitmproxy-lean", lean, *ports))
        gateways = {name: _gateway_process(work, name, workers, light, stamped, password,
                                           profile if name == PROFILED else None)
                    for name, workers in GATEWAYS.items()}
        for gateway in gateways.values():
            start(gateway.process, gateway.port)
        for process, port in waiting:
            wait_for_port(port, process.proc, START_TIMEOUT, process.log_path)
        for name, gateway in gateways.items():
            if GATEWAYS[name]:
                wait_for_log(gateway, "MCP Gateway listening on", count=GATEWAYS[name], timeout=START_TIMEOUT)
            wait_for_login_app(gateway, START_TIMEOUT)
        log.info("all processes up; logging in to each gateway")
        direct = Target("direct", f"http://127.0.0.1:{light}/mcp", f"http://127.0.0.1:{light}/sse",
                        f"http://127.0.0.1:{stamped}/mcp", f"http://127.0.0.1:{stamped}/sse")
        targets = [direct]
        targets += [_proxied(name, json_port, stamped_port, process.proc.pid)
                    for name, process, json_port, stamped_port in proxied]
        targets += [_through_gateway(name, gateway, cookie_header(login_local(gateway.url, BENCH_USER, password)),
                                     profiled=profile is not None and name == PROFILED)
                    for name, gateway in gateways.items()]
        yield Stack(targets, light_upstream.proc.pid, skipped)
