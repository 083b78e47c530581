"""Closed-loop load: N workers, each its own connection and MCP session, calling one tool
back to back. Counts what completes inside the measuring window and the CPU the proxy,
the upstream and this process spent in it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from .cpu import cpu_seconds, machine_busy_seconds, own_cpu_seconds, tree_cpu_seconds
from .jsonrpc import ACCEPT_BOTH, PROTOCOL_VERSION, SESSION_HEADER, BenchError, initialize, initialized, tool_call
from .light_client import Answer, ClientConnection
from .stack import Target

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
