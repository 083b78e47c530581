"""What one benchmark run measures, started on loopback ports picked at run time:

- two upstreams (servers.py): the light one (JSON answers for the throughput phase, idle SSE
  streams for the memory phase) and the demo MCP server with the stamped countdown (event
  delays, first events);
- nginx in front of both (the floor), when installed: keep-alive HTTP/1.1 to the upstreams,
  response buffering off (SSE passes event by event), an access log like any production nginx;
- the gateway three ways — stock `mitmdump -s addons/gateway.py`, and the production launcher
  with 1 and with 2 workers — each with auth on, its own state folder and session store, and a
  logged-in local account whose groups grant per-server scopes (so every call goes through the
  policy's scope resolution and the JSON-RPC inspection);
- optionally mitmproxy's floor: the launcher's lean master without the gateway's addons.

Every process is stopped when the context exits. `describe_machine()` says what the figures
were measured on: they mean little without it.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import shutil
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from mcp_gateway.passwords import hash_password
from tests.support.gateway import Gateway, mitmdump_args, server_entry, write_config
from tests.support.launcher import launcher_args, wait_for_log
from tests.support.login import cookie_header, login_local, wait_for_login_app
from tests.support.processes import Process, free_port, wait_for_port

if TYPE_CHECKING:
    from .run import Plan


# -- the processes ---------------------------------------------------------------------------------

log = logging.getLogger(__name__)

SERVERS = "scripts.benchlib.servers"  # the programs started besides the gateways
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
    profiled: bool = False      # runs under `servers profiled-launcher`: SIGUSR1/SIGUSR2 switch it


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
        args = [sys.executable, "-m", SERVERS, "profiled-launcher", str(profile), *args[3:]]
    env = {"HOME": str(directory), "SECRET_KEY": secrets.token_urlsafe(48)}
    return Gateway(port, config, directory / "state", Process(args, directory / "gateway.log", env=env))


def _lean_mitmproxy(work: Path, routes: dict[int, int]) -> Process:
    modes = [arg for listen, upstream in routes.items()
             for arg in ("--mode", f"reverse:http://127.0.0.1:{upstream}@127.0.0.1:{listen}")]
    return Process([sys.executable, "-m", SERVERS, "lean-mitmproxy", "--confdir", str(work / "lean-confdir"),
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
        light_upstream = start(_upstream(work, LIGHT_SERVER, light, SERVERS, "light-upstream"), light)
        start(_upstream(work, STAMPED_SERVER, stamped, SERVERS, "stamped-server", "--name", STAMPED_SERVER),
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


# -- nginx as the floor, run in the foreground with a config generated into the run's folder -------

MAX_CONNECTIONS = 16384
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if Path(p).exists()), None)


def _server(listen_port: int, upstream_name: str, upstream_port: int) -> str:
    # proxy_set_header at this level replaces every inherited one: both belong here.
    return f"""
    server {{
        listen 127.0.0.1:{listen_port};
        location / {{
            proxy_pass http://{upstream_name};
            proxy_set_header Host 127.0.0.1:{upstream_port};
            proxy_set_header Connection "";
        }}
    }}"""


def nginx_config(directory: Path, routes: dict[int, int]) -> str:
    """`routes`: listening port -> upstream port, each its own server block."""
    temp = "\n".join(f"    {name}_temp_path {directory / name};" for name in TEMP_PATHS)
    upstreams = "".join(f"""
    upstream up{upstream} {{
        server 127.0.0.1:{upstream};
        keepalive 128;
        keepalive_requests 1000000;
    }}""" for upstream in sorted(set(routes.values())))
    servers = "".join(_server(listen, f"up{upstream}", upstream) for listen, upstream in routes.items())
    return f"""daemon off;
worker_processes auto;
worker_rlimit_nofile {MAX_CONNECTIONS * 2};
pid {directory / 'nginx.pid'};
error_log {directory / 'error.log'} warn;
events {{
    worker_connections {MAX_CONNECTIONS};
}}
http {{
    access_log {directory / 'access.log'};
{temp}
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_buffering off;
    proxy_read_timeout 600s;
{upstreams}
{servers}
}}
"""


def start_nginx(binary: str, work: Path, routes: dict[int, int]) -> Process:
    directory = work / "nginx"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, routes))
    # -e: the error log before the config is read (the compiled-in one may not be writable).
    return Process([binary, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")],
                   directory / "nginx.out")


# -- what the figures were measured on -------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit(repo: Path) -> str:
    """The commit measured, "+changes" when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if changed else "")


def _nginx_version() -> str:
    binary = nginx_binary()
    if binary is None:
        return "not installed"
    try:
        # `nginx -v` prints "nginx version: nginx/1.22.1" on stderr.
        printed = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return printed.strip().rpartition("/")[2] or "unknown"


def describe_machine() -> dict[str, object]:
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mitmproxy": version("mitmproxy"),
        "mcp": version("mcp"),
        "httpx": version("httpx"),
        "nginx": _nginx_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "gateway_commit": _commit(Path(__file__).resolve().parents[2]),
    }
