"""The load generator's side: raw MCP JSON-RPC messages, a light HTTP/1.1 client, CPU time
read from /proc, and the closed-loop tools/call load."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11
import httpx

if TYPE_CHECKING:
    from .stack import Target


# -- raw MCP JSON-RPC messages, without the SDK client (it spends more CPU per call than the gateway) ---

PROTOCOL_VERSION = "2025-06-18"
ACCEPT_BOTH = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
SESSION_HEADER = "mcp-session-id"
STAMPED_TOOL = "stamped_countdown"   # stamped_server.py's tool: progress messages carry their emission time
_ids = itertools.count(1)


def request(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(_ids), "method": method}
    if params is not None:
        body["params"] = params
    return body


def initialize() -> dict[str, Any]:
    return request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                  "clientInfo": {"name": "mcp-gateway-bench", "version": "1"}})


def initialized() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tool_call(name: str, arguments: dict[str, Any], progress_token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return request("tools/call", params)


class BenchError(Exception):
    """A request the benchmark needs did not get the answer it expects."""


def check_status(response: httpx.Response, expected: int, what: str) -> None:
    if response.status_code != expected:
        try:
            body = response.text[:300]
        except httpx.ResponseNotRead:  # a streamed answer: its body is not worth waiting for
            body = ""
        raise BenchError(f"{what}: HTTP {response.status_code} {body!r}")


async def open_streamable_session(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
    """initialize + notifications/initialized; returns the headers every later request carries."""
    response = await client.post(url, json=initialize(), headers={**ACCEPT_BOTH, **headers})
    check_status(response, 200, "initialize")
    session_id = response.headers.get(SESSION_HEADER)
    if not session_id:
        raise BenchError("initialize: the answer carries no Mcp-Session-Id")
    session_headers = {**ACCEPT_BOTH, **headers, SESSION_HEADER: session_id, "mcp-protocol-version": PROTOCOL_VERSION}
    response = await client.post(url, json=initialized(), headers=session_headers)
    check_status(response, 202, "notifications/initialized")
    return session_headers


# -- a kept-alive HTTP/1.1 connection with h11: httpx spends ~2.5 ms CPU per request ---------------

READ_SIZE = 65536


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class ClientConnection:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = parts.netloc.encode()
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.h11 = h11.Connection(h11.CLIENT)

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.h11 = h11.Connection(h11.CLIENT)

    async def _next_event(self):
        assert self.reader is not None
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.reader.read(READ_SIZE))

    async def send_head(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> h11.Response:
        """Sends a request and reads its answer's head; the body is read with `read_body`."""
        if self.writer is None or self.h11.our_state is h11.MUST_CLOSE:
            await self.close()
            await self._connect()
        elif self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        assert self.writer is not None
        head = [(b"host", self.authority), *((k.encode(), v.encode()) for k, v in headers.items())]
        if body or method == "POST":
            head.append((b"content-length", b"%d" % len(body)))
        self.writer.write(self.h11.send(h11.Request(method=method, target=path, headers=head))
                          + (self.h11.send(h11.Data(data=body)) if body else b"")
                          + self.h11.send(h11.EndOfMessage()))
        response = await self._next_event()
        if not isinstance(response, h11.Response):
            raise ConnectionError(f"the connection ended before an answer ({type(response).__name__})")
        return response

    async def read_body(self) -> bytes:
        body = b""
        while not isinstance(event := await self._next_event(), h11.EndOfMessage):
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the connection closed inside an answer")
            body += event.data
        return body

    async def read_chunk(self) -> bytes:
        """The next piece of a streamed body; b"" at its end."""
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("the connection closed inside an answer")
        return event.data if isinstance(event, h11.Data) else b""

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        try:
            response = await self.send_head(method, path, headers, body)
            content = await self.read_body()
        except h11.ProtocolError as e:
            await self.close()
            raise ConnectionError(f"HTTP/1.1 protocol error: {e}") from e
        except OSError:
            await self.close()
            raise
        return Answer(response.status_code, dict(response.headers), content)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


# -- CPU time of a process and its live descendants, from /proc (Linux) ----------------------------

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# Fields after the command name: state is field 3 of stat(5), so ppid (4), utime (14) and
# stime (15) sit at these offsets.
PPID, UTIME, STIME = 1, 11, 12


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    return text[text.rindex(")") + 2:].split()


def descendants(pid: int) -> set[int]:
    """Scan /proc: kernels built without CONFIG_PROC_CHILDREN have no children lists."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None:
                parents[int(entry.name)] = int(fields[PPID])
    found = {pid}
    grew = True
    while grew:
        new = {child for child, parent in parents.items() if parent in found and child not in found}
        found |= new
        grew = bool(new)
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, all its threads included."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[UTIME]) + int(fields[STIME])) / TICKS_PER_SECOND


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (the gateway and its login app)."""
    return sum(cpu_seconds(member) for member in descendants(pid))


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """CPU time every process on the host has used (all CPUs, steal included), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND


# -- closed-loop load: N connections, each its own MCP session, calling one tool back to back ------

TOOL = "current_time_by_timezone"
ARGUMENTS = {"timezone": "Europe/Berlin"}


@dataclass
class LoadResult:
    target: str
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)   # seconds, successful calls only
    proxy_cpu: float = 0.0
    upstream_cpu: float = 0.0
    client_cpu: float = 0.0
    others_cpu: float = 0.0   # what the rest of the host used meanwhile: a noise gauge
    first_error: str | None = None
    round_req_per_s: list[float] = field(default_factory=list)   # each measuring window's own rate

    @property
    def best_req_per_s(self) -> float:
        """The fastest round: interference from other work on the host only ever slows a round down."""
        return max(self.round_req_per_s, default=0.0)

    def merge(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.proxy_cpu += other.proxy_cpu
        self.upstream_cpu += other.upstream_cpu
        self.client_cpu += other.client_cpu
        self.others_cpu += other.others_cpu
        self.first_error = self.first_error or other.first_error
        self.round_req_per_s += other.round_req_per_s


@dataclass
class _Window:
    opens: float
    closes: float


def _answer_error(answer: Answer) -> str | None:
    if answer.status != 200:
        return f"HTTP {answer.status} {answer.body[:200]!r}"
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"not JSON: {answer.body[:200]!r}"
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict) or result.get("isError"):
        return f"no tool result: {answer.body[:200]!r}"
    return None


async def _post(connection: ClientConnection, headers: dict[str, str], message: dict) -> Answer:
    return await connection.request("POST", connection.path, headers, json.dumps(message).encode())


async def open_session(connection: ClientConnection, headers: dict[str, str]) -> dict[str, str]:
    """initialize + notifications/initialized; returns the headers every later request carries."""
    answer = await _post(connection, {**ACCEPT_BOTH, **headers}, initialize())
    session_id = answer.headers.get(SESSION_HEADER.encode(), b"").decode()
    if answer.status != 200 or not session_id:
        raise BenchError(f"initialize: HTTP {answer.status}, session id {session_id!r}: {answer.body[:300]!r}")
    session = {**ACCEPT_BOTH, **headers, SESSION_HEADER: session_id, "mcp-protocol-version": PROTOCOL_VERSION}
    answer = await _post(connection, session, initialized())
    if answer.status != 202:
        raise BenchError(f"notifications/initialized: HTTP {answer.status} {answer.body[:300]!r}")
    return session


async def _worker(connection: ClientConnection, headers: dict[str, str], window: _Window, result: LoadResult) -> None:
    while (started := time.perf_counter()) < window.closes:
        try:
            error = _answer_error(await _post(connection, headers, tool_call(TOOL, ARGUMENTS)))
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
        finished = time.perf_counter()
        if not window.opens <= finished <= window.closes:
            continue
        if error is None:
            result.requests += 1
            result.latencies.append(finished - started)
        else:
            result.errors += 1
            result.first_error = result.first_error or error


def _cpu(target: Target, upstream_pid: int) -> tuple[float, float, float, float]:
    proxy = tree_cpu_seconds(target.proxy_pid) if target.proxy_pid else 0.0
    return proxy, cpu_seconds(upstream_pid), own_cpu_seconds(), machine_busy_seconds()


async def measure_load(target: Target, upstream_pid: int, concurrency: int, warmup: float,
                       duration: float) -> LoadResult:
    result = LoadResult(target.name, concurrency)
    connections = [ClientConnection(target.json_url) for _ in range(concurrency)]
    try:
        sessions = await asyncio.gather(*(open_session(c, target.headers) for c in connections))
        now = time.perf_counter()
        window = _Window(now + warmup, now + warmup + duration)
        workers = [asyncio.create_task(_worker(c, h, window, result)) for c, h in zip(connections, sessions)]
        await asyncio.sleep(window.opens - time.perf_counter())
        before, opened = _cpu(target, upstream_pid), time.perf_counter()
        await asyncio.sleep(max(0.0, window.closes - time.perf_counter()))
        after, closed = _cpu(target, upstream_pid), time.perf_counter()
        await asyncio.gather(*workers)
        result.seconds = closed - opened
        result.proxy_cpu, result.upstream_cpu, result.client_cpu, busy = (b - a for a, b in zip(before, after))
        result.others_cpu = busy - result.proxy_cpu - result.upstream_cpu - result.client_cpu
        result.round_req_per_s = [result.requests / result.seconds]
        await asyncio.gather(*(c.request("DELETE", c.path, h) for c, h in zip(connections, sessions)),
                             return_exceptions=True)
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return result
