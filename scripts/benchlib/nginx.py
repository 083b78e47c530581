"""nginx as the floor: a plain reverse proxy in front of the upstreams, run in the foreground
with a config generated into the run's folder.

Keep-alive HTTP/1.1 to the upstreams, response buffering off (SSE passes event by event), an
access log like any production nginx. Debian's `nginx` package provides the binary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.processes import Process

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
