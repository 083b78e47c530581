"""Event streams and idle streams: per-event delivery latency, time to a fresh stream's first
event, and memory per idle SSE stream."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urljoin

import httpx

from .client import (STAMPED_TOOL, BenchError, ClientConnection, check_status, descendants, initialize, initialized,
                     open_streamable_session, tool_call)
from .stack import Target


# -- event streams: each event's delivery latency, a fresh stream's first event --------------------

SSE_ACCEPT = {"accept": "text/event-stream"}
TIMEOUT = httpx.Timeout(30.0)


@dataclass
class SseMessage:
    arrived_ns: int
    event: str
    data: str


@dataclass
class StreamRun:
    latencies_ms: list[float] = field(default_factory=list)   # per progress event: arrival - emission
    intervals_ms: list[float] = field(default_factory=list)   # between consecutive progress arrivals
    call_ms: float = 0.0                                       # tools/call sent -> its result arrived


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """Events as their terminating blank line arrives; the arrival time is taken then."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseMessage(time.monotonic_ns(), event, "\n".join(data))
            event, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


async def _answer(messages: AsyncIterator[SseMessage], request_id: int) -> SseMessage:
    async for message in messages:
        if message.event == "message" and json.loads(message.data).get("id") == request_id:
            return message
    raise BenchError(f"the stream ended before the answer to request {request_id}")


async def _progress_until_result(messages: AsyncIterator[SseMessage], call: dict, sent_ns: int) -> StreamRun:
    run = StreamRun()
    previous: int | None = None
    async for message in messages:
        if message.event != "message":
            continue
        body = json.loads(message.data)
        if body.get("method") == "notifications/progress":
            run.latencies_ms.append((message.arrived_ns - int(body["params"]["message"])) / 1e6)
            if previous is not None:
                run.intervals_ms.append((message.arrived_ns - previous) / 1e6)
            previous = message.arrived_ns
        elif body.get("id") == call["id"]:
            if "result" not in body or body["result"].get("isError"):
                raise BenchError(f"{STAMPED_TOOL} failed: {message.data[:300]}")
            run.call_ms = (message.arrived_ns - sent_ns) / 1e6
            return run
    raise BenchError("the stream ended before the tool's result")


def _countdown(steps: int, interval: float) -> dict:
    return tool_call(STAMPED_TOOL, {"steps": steps, "interval": interval}, progress_token="bench")


async def sse_transport_run(target: Target, steps: int, interval: float) -> StreamRun:
    """The SSE transport: answers and progress travel on the GET stream, POSTs get 202."""
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=target.headers) as client:
        async with client.stream("GET", target.sse_url, headers=SSE_ACCEPT) as stream:
            check_status(stream, 200, "SSE stream")
            messages = sse_messages(stream)
            endpoint = await anext(messages)
            if endpoint.event != "endpoint":
                raise BenchError(f"the SSE stream began with {endpoint.event!r}, not the endpoint event")
            post_url = urljoin(target.sse_url, endpoint.data)
            hello = initialize()
            check_status(await client.post(post_url, json=hello), 202, "initialize")
            await _answer(messages, hello["id"])
            check_status(await client.post(post_url, json=initialized()), 202, "notifications/initialized")
            call = _countdown(steps, interval)
            sent = time.monotonic_ns()
            check_status(await client.post(post_url, json=call), 202, "tools/call")
            return await _progress_until_result(messages, call, sent)


async def streamable_sse_run(target: Target, steps: int, interval: float) -> StreamRun:
    """Streamable HTTP with an SSE answer: progress and result stream back on the POST."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        headers = await open_streamable_session(client, target.streamable_url, target.headers)
        call = _countdown(steps, interval)
        sent = time.monotonic_ns()
        try:
            async with client.stream("POST", target.streamable_url, json=call, headers=headers) as answer:
                check_status(answer, 200, "tools/call")
                if not answer.headers.get("content-type", "").startswith("text/event-stream"):
                    raise BenchError(f"tools/call answered {answer.headers.get('content-type')!r}, not an SSE stream")
                return await _progress_until_result(sse_messages(answer), call, sent)
        finally:
            await client.delete(target.streamable_url, headers=headers)


async def first_event_ms(target: Target) -> float:
    """A fresh connection's GET of the SSE stream until its endpoint event arrives."""
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=target.headers) as client:
        started = time.monotonic_ns()
        async with client.stream("GET", target.sse_url, headers=SSE_ACCEPT) as stream:
            check_status(stream, 200, "SSE stream")
            first = await anext(sse_messages(stream))
            if first.event != "endpoint":
                raise BenchError(f"the SSE stream began with {first.event!r}, not the endpoint event")
            return (first.arrived_ns - started) / 1e6


# -- memory per idle SSE stream: the proxy's VmRSS before and while they are open ---------------

log = logging.getLogger(__name__)

OPENING_AT_ONCE = 32     # streams being opened concurrently (a burst of 1,000 would be a different test)
OPEN_TIMEOUT = 30.0
SETTLE_SECONDS = 1.0     # after the last stream opened, before reading RSS
FDS_PER_STREAM = 2       # the client's connection and the one to the upstream
FD_HEADROOM = 256
IDLE_SSE_ACCEPT = {"accept": "text/event-stream", "cache-control": "no-store"}


@dataclass
class IdleMemory:
    target: str
    wanted: int
    opened: int = 0
    first_error: str | None = None
    proxy_before_kib: int = 0
    proxy_after_kib: int = 0
    login_before_kib: int = 0
    login_after_kib: int = 0
    proxy_processes: int = 0
    login_processes: int = 0
    fd_limit: int | None = None   # the lowest soft RLIMIT_NOFILE among the proxy's processes

    @property
    def kib_per_stream(self) -> float:
        return (self.proxy_after_kib - self.proxy_before_kib) / self.opened if self.opened else float("nan")


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's soft fd limit (the proxies started later inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, e)
    return soft


def fds_needed(streams: int) -> int:
    return streams * FDS_PER_STREAM + FD_HEADROOM


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def rss_kib(pid: int) -> int:
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1])
    return 0


def _is_login_app(pid: int) -> bool:
    return b"login_app" in _read(Path(f"/proc/{pid}/cmdline"))


def open_files_limit(pid: int) -> int | None:
    for line in _read(Path(f"/proc/{pid}/limits")).splitlines():
        if line.startswith(b"Max open files"):
            soft = line.split()[3]
            return None if soft == b"unlimited" else int(soft)
    return None


def _processes(pid: int) -> tuple[set[int], set[int]]:
    """(the proxy's processes, the login app's) under `pid`."""
    tree = descendants(pid)
    login = {member for member in tree if _is_login_app(member)}
    return tree - login, login


def _sum_rss(pids: set[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


async def _open_stream(target: Target, gate: asyncio.Semaphore) -> ClientConnection:
    connection = ClientConnection(target.idle_sse_url)
    async with gate:
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                head = await connection.send_head("GET", connection.path, {**IDLE_SSE_ACCEPT, **target.headers})
                if head.status_code != 200:
                    raise ConnectionError(f"HTTP {head.status_code}")
                received = b""
                while b"\n\n" not in received.replace(b"\r\n", b"\n"):
                    chunk = await connection.read_chunk()
                    if not chunk:
                        raise ConnectionError("the stream ended before its endpoint event")
                    received += chunk
        except BaseException:
            await connection.close()
            raise
    return connection


async def measure_idle_memory(target: Target, streams: int) -> IdleMemory:
    assert target.proxy_pid is not None
    result = IdleMemory(target.name, streams)
    proxy, login = _processes(target.proxy_pid)
    limits = [limit for limit in map(open_files_limit, proxy) if limit is not None]
    result.fd_limit = min(limits) if limits else None
    result.proxy_processes, result.login_processes = len(proxy), len(login)
    result.proxy_before_kib, result.login_before_kib = _sum_rss(proxy), _sum_rss(login)
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    outcomes = await asyncio.gather(*(_open_stream(target, gate) for _ in range(streams)), return_exceptions=True)
    opened = [o for o in outcomes if isinstance(o, ClientConnection)]
    errors = [o for o in outcomes if not isinstance(o, ClientConnection)]
    try:
        result.opened = len(opened)
        if errors:
            result.first_error = f"{type(errors[0]).__name__}: {errors[0]}"
        await asyncio.sleep(SETTLE_SECONDS)
        result.proxy_after_kib, result.login_after_kib = _sum_rss(proxy), _sum_rss(login)
    finally:
        await asyncio.gather(*(c.close() for c in opened))
    return result
