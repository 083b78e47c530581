"""Server health: a real MCP `initialize` + `tools/list` against each upstream, and the
record of the last check (time, latency, error, tools) kept in the shared session store.

The check speaks JSON-RPC over Streamable HTTP with httpx (JSON or SSE answers); an upstream
whose streamable path is missing (404/405) is checked over its SSE transport instead. It uses
the server's own upstream credential and TLS settings and is bounded by one timeout.
Several gateway instances may check the same server: the last record written wins, which is
what a reader wants (the freshest). See docs/registry-ui.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from .config import ServerConfig
from .sessions import SessionStore, StoreUnavailable

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "2025-06-18"
RECORD_TTL = 7 * 24 * 3600.0
MAX_TOOLS = 500
# An upstream's answers are read up to this size (a larger one fails the check), and a tool's
# input schema is kept only up to MAX_SCHEMA_CHARS of JSON: the record is shown on every page load.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
MAX_SCHEMA_CHARS = 16 * 1024
_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
    "clientInfo": {"name": "mcp-gateway-health", "version": "1"}}}
_INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


class CheckFailed(Exception):
    pass


@dataclass(frozen=True)
class Health:
    server: str
    ok: bool
    checked_at: float
    latency_ms: int
    error: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    transport: str = "streamable"

    @property
    def tool_count(self) -> int:
        return len(self.tools)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Health:
        return cls(**json.loads(raw))

    def summary(self) -> dict[str, Any]:
        """What the registry API shows beside an entry."""
        return {"status": "ok" if self.ok else "failing", "checked_at": self.checked_at,
                "latency_ms": self.latency_ms, "error": self.error, "tool_count": self.tool_count}


UNCHECKED = {"status": "unknown", "checked_at": None, "latency_ms": None, "error": None, "tool_count": None}


def _tool_entry(tool: Any) -> dict[str, Any] | None:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        return None
    schema = tool.get("inputSchema")
    return {"name": tool["name"][:200], "description": str(tool.get("description") or "")[:2000],
            "inputSchema": schema if isinstance(schema, dict) and _small(schema) else {}}


def _small(schema: dict[str, Any]) -> bool:
    try:
        return len(json.dumps(schema)) <= MAX_SCHEMA_CHARS
    except (RecursionError, ValueError):
        return False


class _TooLarge(CheckFailed):
    def __init__(self) -> None:
        super().__init__(f"the upstream's answer is larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB")


@dataclass(frozen=True)
class _Answer:
    status_code: int
    content_type: str
    body: bytes
    session_id: str | None


async def _post(client: httpx.AsyncClient, url: str, message: dict[str, Any], headers: dict[str, str]) -> _Answer:
    """POST, reading at most MAX_ANSWER_BYTES of the answer (decoded: a compressed bomb is cut too)."""
    async with client.stream("POST", url, json=message, headers=headers) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise _TooLarge()
        return _Answer(response.status_code, response.headers.get("content-type", ""), bytes(body),
                       response.headers.get("mcp-session-id"))


async def _bounded_lines(response: httpx.Response):
    """The lines of a streamed answer; more than MAX_ANSWER_BYTES in all (or in one line) fails."""
    pending, total = "", 0
    async for text in response.aiter_text():
        total += len(text)
        if total > MAX_ANSWER_BYTES:
            raise _TooLarge()
        pending += text
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line.removesuffix("\r")
    if pending:
        yield pending.removesuffix("\r")


def _verify(server: ServerConfig) -> ssl.SSLContext | bool:
    if not server.verify_tls:
        return False
    if server.ca_file:
        return ssl.create_default_context(cafile=server.ca_file)
    return True


def _answer(response: _Answer, wanted_id: int) -> dict[str, Any]:
    """The JSON-RPC answer with `wanted_id` from a JSON or SSE body."""
    if response.status_code >= 400:
        raise CheckFailed(f"HTTP {response.status_code} from the upstream")
    documents: list[Any] = []
    if response.content_type.startswith("text/event-stream"):
        for event in response.body.decode("utf-8", "replace").split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.splitlines() if line.startswith("data:"))
            if data:
                documents.append(json.loads(data))
    else:
        documents.append(json.loads(response.body))
    for document in documents:
        for message in document if isinstance(document, list) else [document]:
            if isinstance(message, dict) and message.get("id") == wanted_id:
                if "error" in message:
                    raise CheckFailed(f"JSON-RPC error: {str(message['error'].get('message', ''))[:200]}")
                return message.get("result") or {}
    raise CheckFailed("no answer to the request in the upstream's response")


async def _streamable(client: httpx.AsyncClient, server: ServerConfig, headers: dict[str, str]) -> list[Any]:
    url = server.url.rstrip("/") + server.streamable_path
    base = {**headers, "accept": "application/json, text/event-stream", "content-type": "application/json"}
    first = await _post(client, url, _INIT, base)
    if first.status_code in (404, 405):
        raise LookupError("no streamable endpoint")
    result = _answer(first, 1)
    session = first.session_id
    version = result.get("protocolVersion") or PROTOCOL_VERSION
    follow = {**base, "mcp-protocol-version": str(version), **({"mcp-session-id": session} if session else {})}
    await _post(client, url, _INITIALIZED, follow)
    tools = _answer(await _post(client, url, _TOOLS, follow), 2).get("tools", [])
    if session:
        try:
            await client.delete(url, headers=follow)
        except httpx.HTTPError:
            pass
    return tools


async def _sse(client: httpx.AsyncClient, server: ServerConfig, headers: dict[str, str]) -> list[Any]:
    base_url = server.url.rstrip("/")
    async with client.stream("GET", base_url + server.sse_path, headers={**headers, "accept": "text/event-stream"}) as stream:
        if stream.status_code >= 400:
            raise CheckFailed(f"HTTP {stream.status_code} from the upstream's SSE endpoint")
        events = _sse_events(_bounded_lines(stream))
        endpoint = None
        async for name, data in events:
            if name == "endpoint":
                endpoint = data
                break
        if not endpoint or not endpoint.startswith("/"):
            raise CheckFailed("the upstream's SSE stream named no message endpoint")
        post_url = f"{server.scheme}://{server.host_header}{endpoint}"
        post = {**headers, "content-type": "application/json"}
        results: dict[int, Any] = {}
        for message, wanted in ((_INIT, 1), (_INITIALIZED, None), (_TOOLS, 2)):
            sent = await _post(client, post_url, message, post)
            if sent.status_code >= 400:
                raise CheckFailed(f"HTTP {sent.status_code} from the upstream's message endpoint")
            while wanted is not None and wanted not in results:
                async for name, data in events:
                    if name == "message":
                        answer = json.loads(data)
                        if isinstance(answer, dict) and "error" in answer:
                            raise CheckFailed("JSON-RPC error from the upstream")
                        results[answer.get("id")] = answer.get("result") or {}
                        break
                else:
                    raise CheckFailed("the upstream's SSE stream ended")
        return results[2].get("tools", [])


async def _sse_events(lines):
    name, data = "message", []
    async for line in lines:
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def check_server(server: ServerConfig, credential: str | None, timeout: float) -> Health:
    """One check; never raises (a failure is a record with its error)."""
    started = time.monotonic()
    headers = {"user-agent": "mcp-gateway-health/1"}
    if server.upstream_header and credential:
        headers[server.upstream_header] = credential
    transport = "streamable"
    try:
        async with httpx.AsyncClient(verify=_verify(server), timeout=timeout, follow_redirects=False,
                                     trust_env=False) as client:
            async with asyncio.timeout(timeout):
                try:
                    raw_tools = await _streamable(client, server, headers)
                except LookupError:
                    transport = "sse"
                    raw_tools = await _sse(client, server, headers)
        tools = [entry for entry in map(_tool_entry, raw_tools if isinstance(raw_tools, list) else [])
                 if entry is not None][:MAX_TOOLS]
        return Health(server.name, True, time.time(), _elapsed(started), None, tools, transport)
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except CheckFailed as e:
        error = str(e)
    except httpx.HTTPError as e:
        error = f"{type(e).__name__}: {str(e)[:200] or 'connection failed'}"
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        error = f"unreadable answer: {type(e).__name__}"
    except RecursionError:
        error = "unreadable answer: nested too deeply"
    except ssl.SSLError as e:
        error = f"TLS: {e.reason or 'handshake failed'}"
    except OSError as e:
        error = f"{type(e).__name__}: {e.strerror or 'failed'}"
    return Health(server.name, False, time.time(), _elapsed(started), error, [], transport)


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _key(server: str) -> str:
    return f"health:{server}"


class HealthBoard:
    """The last check of each server: in the shared store when there is one, else in memory.
    The proxy also keeps what it last read or wrote, so its synchronous hooks can answer."""

    def __init__(self, store: SessionStore | None) -> None:
        self.store = store
        self.latest: dict[str, Health] = {}

    async def write(self, health: Health) -> None:
        self.latest[health.server] = health
        if self.store is not None:
            try:
                await self.store.put(_key(health.server), health.to_json(), RECORD_TTL)
            except StoreUnavailable:
                log.warning("health: the session store is unavailable; the check of %s is kept in memory only",
                            health.server)

    async def read(self, server: str) -> Health | None:
        if self.store is not None:
            try:
                raw = await self.store.get_value(_key(server))
            except StoreUnavailable:
                raw = None
            if raw:
                try:
                    self.latest[server] = Health.from_json(raw)
                except (ValueError, TypeError):
                    log.warning("health: the stored record of %s is unreadable", server)
        return self.latest.get(server)
