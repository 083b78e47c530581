"""What a soak run loads: two demo MCP servers (JSON answers and SSE answers) behind one gateway
with authentication on and a signed-in local administrator, on loopback ports picked at run time."""

from __future__ import annotations

import secrets
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local, wait_for_login_app
from tests.support.upstreams import mcp_upstream

JSON_SERVER = "currenttime-json"
SSE_SERVER = "currenttime"


@dataclass(frozen=True)
class Stack:
    url: str
    gateway_pid: int
    cookie: dict[str, str]

    def streamable_url(self, server: str) -> str:
        return f"{self.url}/api/streamable/{server}"

    def sse_url(self, server: str) -> str:
        return f"{self.url}/api/execute/{server}/sse"


@contextmanager
def running_stack(work: Path) -> Iterator[Stack]:
    password = secrets.token_urlsafe(16)
    with ExitStack() as cleanup:
        json_upstream = cleanup.enter_context(mcp_upstream(work, name=JSON_SERVER, json_response=True))
        sse_upstream = cleanup.enter_context(mcp_upstream(work, name=SSE_SERVER))
        servers = [server_entry(JSON_SERVER, json_upstream.url), server_entry(SSE_SERVER, sse_upstream.url)]
        gateway = cleanup.enter_context(run_gateway(
            work, servers, auth={"enabled": True, "provider_type": "local"},
            env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": password, "SECRET_KEY": secrets.token_urlsafe(48)}))
        wait_for_login_app(gateway)
        yield Stack(gateway.url, gateway.process.proc.pid, cookie_header(login_local(gateway.url, "admin", password)))
