"""A real HAProxy (the Debian package) in front of gateway instances, for tests. The
configuration is the one docs/operations.md recommends: health checks on /healthz, retries
with redispatch for connections an instance refuses or drops."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .processes import free_port, running

_INSTALL_HINT = "haproxy is not installed (Debian/Ubuntu: apt-get install -y haproxy; scripts/test does it)"

CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    # a health check may take longer than `inter` on a loaded host: with `fall 1` the only
    # instance left would be marked down for one slow /healthz, and every request answered 503
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend gateway
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 200ms fall 1 rise 2
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    assert found, _INSTALL_HINT
    return found


@contextmanager
def run_haproxy(tmp: Path, backends: Sequence[int], port: int | None = None) -> Iterator[str]:
    """HAProxy on a free loopback port in front of the gateways on `backends`; yields its URL."""
    port = port or free_port()
    servers = "\n".join(f"    server g{i} 127.0.0.1:{backend} check" for i, backend in enumerate(backends, 1))
    config = tmp / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, servers=servers))
    with running([haproxy_binary(), "-f", str(config), "-db"], tmp / "haproxy.log", port=port):
        yield f"http://127.0.0.1:{port}"
