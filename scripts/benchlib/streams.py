"""Event streams: how late each event arrives, and how long a fresh SSE stream takes to start.

The stamped countdown tool puts the upstream's CLOCK_MONOTONIC at emission into each progress
message; arrival minus that stamp is the event's delivery latency on this path.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import AsyncIterator
from urllib.parse import urljoin

import httpx

from .jsonrpc import (STAMPED_TOOL, BenchError, check_status, initialize, initialized, open_streamable_session,
                      tool_call)
from .stack import Target

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
