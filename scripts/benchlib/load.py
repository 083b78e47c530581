"""Closed-loop load: N workers, each its own connection and MCP session, calling one tool
back to back. Counts what completes inside the measuring window and the CPU the proxy,
the upstream and this process spent in it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx

from .cpu import cpu_seconds, machine_busy_seconds, own_cpu_seconds, tree_cpu_seconds
from .jsonrpc import open_streamable_session, tool_call
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


@dataclass
class _Window:
    opens: float
    closes: float


def _answer_error(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code} {response.text[:200]!r}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"not JSON: {response.text[:200]!r}"
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict) or result.get("isError"):
        return f"no tool result: {response.text[:200]!r}"
    return None


async def _worker(client: httpx.AsyncClient, url: str, headers: dict[str, str], window: _Window,
                  result: LoadResult) -> None:
    while (started := time.perf_counter()) < window.closes:
        body = json.dumps(tool_call(TOOL, ARGUMENTS)).encode()
        try:
            error = _answer_error(await client.post(url, content=body, headers=headers))
        except httpx.HTTPError as e:
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
    clients = [httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=1)) for _ in range(concurrency)]
    try:
        sessions = await asyncio.gather(*(open_streamable_session(c, target.json_url, target.headers)
                                          for c in clients))
        now = time.perf_counter()
        window = _Window(now + warmup, now + warmup + duration)
        workers = [asyncio.create_task(_worker(c, target.json_url, h, window, result))
                   for c, h in zip(clients, sessions)]
        await asyncio.sleep(window.opens - time.perf_counter())
        before, opened = _cpu(target, upstream_pid), time.perf_counter()
        await asyncio.sleep(max(0.0, window.closes - time.perf_counter()))
        after, closed = _cpu(target, upstream_pid), time.perf_counter()
        await asyncio.gather(*workers)
        result.seconds = closed - opened
        result.proxy_cpu, result.upstream_cpu, result.client_cpu, busy = (b - a for a, b in zip(before, after))
        result.others_cpu = busy - result.proxy_cpu - result.upstream_cpu - result.client_cpu
        await asyncio.gather(*(c.delete(target.json_url, headers=h) for c, h in zip(clients, sessions)),
                             return_exceptions=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return result
