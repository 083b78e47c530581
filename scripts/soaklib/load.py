"""The soak's load: a mix of requests, each with the answer it is meant to get, and SSE streams
opened, used once and closed — run side by side, every outcome tallied."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import httpx

from scripts.benchlib.client import initialize, open_streamable_session, tool_call

from .stack import JSON_SERVER, SSE_SERVER, Stack

TIMEOUT = httpx.Timeout(30.0)
MAX_REPORTED = 50  # unexpected answers kept in full; the rest are counted


@dataclass
class Tally:
    done: Counter = field(default_factory=Counter)        # kind -> answers as intended
    unexpected: Counter = field(default_factory=Counter)  # kind -> answers not as intended
    examples: list[str] = field(default_factory=list)

    def record(self, kind: str, problem: str | None) -> None:
        if problem is None:
            self.done[kind] += 1
            return
        self.unexpected[kind] += 1
        if len(self.examples) < MAX_REPORTED:
            self.examples.append(f"{kind}: {problem}")

    @property
    def total_unexpected(self) -> int:
        return sum(self.unexpected.values())


Check = Callable[[httpx.AsyncClient], Awaitable[str | None]]


def _expect(response: httpx.Response, status: int, needle: str = "") -> str | None:
    if response.status_code == status and needle in response.text:
        return None
    return f"HTTP {response.status_code} (wanted {status}) {response.text[:200]!r}"


def request_mix(stack: Stack, session: dict[str, str]) -> list[tuple[str, int, Check]]:
    """(kind, weight, check): the requests of the mix and the answer each must get."""
    json_url = stack.streamable_url(JSON_SERVER)

    def call() -> dict:  # a fresh JSON-RPC id each time: one session, many calls in flight
        return tool_call("current_time_by_timezone", {"timezone": "UTC"})

    async def tools_call(http):
        return _expect(await http.post(json_url, json=call(), headers=session), 200, '"result"')

    async def registry(http):
        return _expect(await http.get(f"{stack.url}/api/servers", headers=stack.cookie), 200, SSE_SERVER)

    async def no_credentials(http):
        return _expect(await http.post(json_url, json=call(), headers={"accept": session["accept"]}), 401)

    async def ambiguous_path(http):
        return _expect(await http.get(f"{stack.url}/api/execute/x%2f..%2f{SSE_SERVER}/sse", headers=stack.cookie), 400)

    async def unknown_server(http):
        return _expect(await http.get(f"{stack.url}/api/execute/nope/sse", headers=stack.cookie), 404)

    async def foreign_origin(http):
        return _expect(await http.post(json_url, json=call(), headers={**session, "origin": "https://evil.example"}),
                       403)

    return [("tools/call", 10, tools_call), ("registry list", 4, registry), ("no credentials", 2, no_credentials),
            ("ambiguous path", 1, ambiguous_path), ("unknown server", 1, unknown_server),
            ("foreign origin", 2, foreign_origin)]


async def sse_round_trip(http: httpx.AsyncClient, stack: Stack) -> str | None:
    """Open an SSE stream, initialize over it, close it."""
    async with http.stream("GET", stack.sse_url(SSE_SERVER), headers=stack.cookie) as stream:
        if stream.status_code != 200:
            return f"stream HTTP {stream.status_code}"
        lines = stream.aiter_lines()
        endpoint = await _next_data(lines)
        if not endpoint.startswith(f"/api/execute/{SSE_SERVER}/messages/?session_id="):
            return f"endpoint event {endpoint[:120]!r}"
        message = initialize()
        posted = await http.post(stack.url + endpoint, json=message, headers=stack.cookie)
        if posted.status_code != 202:
            return f"message POST HTTP {posted.status_code} {posted.text[:200]!r}"
        answer = json.loads(await _next_data(lines))
        if answer.get("id") != message["id"] or "result" not in answer:
            return f"answer {json.dumps(answer)[:200]}"
    return None


async def _next_data(lines) -> str:
    async for line in lines:
        if line.startswith("data:"):
            return line[5:].strip()
    raise EOFError("the stream ended")


async def run_load(stack: Stack, requests: int, streams: int, concurrency: int, stream_concurrency: int) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency + 2 * stream_concurrency + 4)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:
        session = await open_streamable_session(http, stack.streamable_url(JSON_SERVER), stack.cookie)
        mix = request_mix(stack, session)
        jobs = iter(itertools.islice(itertools.cycle([(k, c) for k, w, c in mix for _ in range(w)]), requests))
        stream_jobs = iter(range(streams))

        async def request_worker() -> None:
            for kind, check in jobs:
                tally.record(kind, await _guarded(check(http)))

        async def stream_worker() -> None:
            for _ in stream_jobs:
                tally.record("SSE stream", await _guarded(sse_round_trip(http, stack)))

        await asyncio.gather(*(request_worker() for _ in range(concurrency)),
                             *(stream_worker() for _ in range(stream_concurrency)))
    return tally


async def _guarded(outcome: Awaitable[str | None]) -> str | None:
    try:
        return await outcome
    except (httpx.HTTPError, EOFError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
