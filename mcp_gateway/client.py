"""Call MCP servers behind the gateway with the `mcp` SDK: sign in, then open a session by name.

The OAuth guide's snippets name `SSEClient`, `StreamableHTTPClient` and `execute_tool`, which the
`mcp` SDK does not have. This is what they meant, on the SDK's real clients:

    from mcp_gateway.client import GatewayClient

    gateway = await GatewayClient.sign_in("http://localhost:7860", "admin", password)  # a local account
    gateway = GatewayClient("http://localhost:7860", cookie=session_cookie)           # or a browser's cookie
    gateway = GatewayClient("http://localhost:7860", bearer_token=access_token)       # or a bearer token
    async with gateway.session("currenttime", transport="sse") as client:             # or "streamable"
        result = await client.call_tool("current_time_by_timezone", {"timezone": "America/New_York"})

`client` is the SDK's `mcp.Client`. Install the SDK with the `client` extra
(`pip install "mcp-gateway[client]"`); it is imported only when a session opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .config_schema import SERVER_NAME
from .identity import SESSION_COOKIE

if TYPE_CHECKING:  # the SDK is an optional dependency
    from mcp import Client

TRANSPORTS = ("streamable", "sse")
READ_TIMEOUT = 60.0


class SignInFailed(Exception):
    """The gateway refused the sign-in; the message says why (status and the gateway's reason)."""


class GatewayClient:
    def __init__(self, base_url: str, *, cookie: str | None = None, bearer_token: str | None = None,
                 timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected the gateway's http(s) URL, got {base_url!r}")
        if cookie and bearer_token:
            raise ValueError("give a session cookie or a bearer token, not both")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._cookie = cookie
        self._bearer_token = bearer_token

    def __repr__(self) -> str:  # never the credential
        return f"GatewayClient({self.base_url!r})"

    @classmethod
    async def sign_in(cls, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> GatewayClient:
        """Signs in with a local account (the login app's form) and keeps the session cookie."""
        client = cls(base_url, timeout=timeout)
        async with httpx.AsyncClient(timeout=timeout) as http:
            answer = await http.post(f"{client.base_url}/oauth/login/local",
                                     data={"username": username, "password": password},
                                     headers={"origin": _origin(client.base_url)})
        cookie = answer.cookies.get(SESSION_COOKIE)
        if answer.status_code != 303 or not cookie:
            raise SignInFailed(f"sign-in at {client.base_url} refused: HTTP {answer.status_code}{_reason(answer)}")
        client._cookie = cookie
        return client

    @property
    def headers(self) -> dict[str, str]:
        """What every request to the gateway carries: the session cookie or the bearer token."""
        if self._bearer_token:
            return {"authorization": f"Bearer {self._bearer_token}"}
        if self._cookie:
            return {"cookie": f"{SESSION_COOKIE}={self._cookie}"}
        return {}

    def url(self, server: str, transport: str = "streamable") -> str:
        """The gateway's endpoint for `server` on `transport` (docs/mcp-clients.md)."""
        if not isinstance(server, str) or not SERVER_NAME.fullmatch(server):
            raise ValueError(f"not a server name: {server!r}")
        if transport == "sse":
            return f"{self.base_url}/api/execute/{server}/sse"
        if transport == "streamable":
            return f"{self.base_url}/api/streamable/{server}"
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")

    @asynccontextmanager
    async def session(self, server: str, *, transport: str = "streamable",
                      read_timeout: float = READ_TIMEOUT) -> AsyncIterator[Client]:
        """An initialized `mcp.Client` for `server`, through the gateway."""
        url = self.url(server, transport)
        from mcp import Client  # the optional `client` extra

        if transport == "sse":
            from mcp.client.sse import sse_client

            async with Client(sse_client(url, headers=self.headers, timeout=self.timeout,
                                         sse_read_timeout=read_timeout),
                              read_timeout_seconds=read_timeout) as client:
                yield client
            return
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        async with create_mcp_http_client(headers=self.headers) as http:
            async with Client(streamable_http_client(url, http_client=http),
                              read_timeout_seconds=read_timeout) as client:
                yield client

    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any] | None = None, *,
                        transport: str = "streamable") -> Any:
        """One tool call in a session of its own (the guide's `execute_tool`): the SDK's CallToolResult."""
        async with self.session(server, transport=transport) as client:
            return await client.call_tool(tool, arguments or {})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) else ""
