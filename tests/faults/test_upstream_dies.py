"""An upstream dies mid-stream: its clients see their streams end (never a hang), new requests
to it get a clear 502, everyone else carries on, and it is served again as soon as it is back."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.faults.conftest import ACCEPT, INIT
from tests.support.mcp_clients import sse_session, streamable_session
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

SSE_ACCEPT = {"accept": "text/event-stream"}


def _read_until_end(response: httpx.Response, lines: list[str], ended: threading.Event) -> None:
    try:
        for line in response.iter_lines():
            lines.append(line)
    except httpx.HTTPError as e:
        lines.append(f"<{type(e).__name__}>")
    ended.set()


def _streamable_call_stream(http: httpx.Client, url: str):
    """A Streamable HTTP session whose tools/call answer is a long SSE stream of progress events."""
    init = http.post(url, json=INIT, headers=ACCEPT)
    assert init.status_code == 200, init.text
    session = {**ACCEPT, "mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "countdown", "arguments": {"steps": 20, "interval": 0.3}, "_meta": {"progressToken": "p"}}}
    return http.stream("POST", url, json=call, headers=session)


def test_an_upstream_dying_mid_stream_ends_its_streams_and_spares_the_others(open_fault_gateway):
    gw, dying, steady, _ = open_fault_gateway
    with httpx.Client(timeout=httpx.Timeout(10, read=30)) as http:
        with http.stream("GET", gw.sse_url("dying"), headers=SSE_ACCEPT) as sse, \
                _streamable_call_stream(http, gw.streamable_url("dying")) as call, \
                _streamable_call_stream(http, gw.streamable_url("steady")) as bystander:
            assert sse.status_code == call.status_code == bystander.status_code == 200
            streams = {name: ([], threading.Event()) for name in ("sse", "call", "bystander")}
            for name, response in (("sse", sse), ("call", call), ("bystander", bystander)):
                threading.Thread(target=_read_until_end, args=(response, *streams[name]), daemon=True).start()
            wait_until(lambda: any("notifications/progress" in line for line in streams["call"][0]), 10, "progress")

            dying.kill()
            for name in ("sse", "call"):
                assert streams[name][1].wait(10), f"the {name} stream of a dead upstream did not end"
            assert not any('"result"' in line for line in streams["call"][0]), "a result from a killed server"
            assert streams["bystander"][1].wait(20)
            assert any('"result"' in line for line in streams["bystander"][0]), "another server's call broke"

        refused = httpx.post(gw.streamable_url("dying"), json=INIT, headers=ACCEPT, timeout=10)
        assert refused.status_code == 502 and refused.json()["error"] == "bad_gateway"
        assert "127.0.0.1" not in refused.text  # the gateway says what happened, not where


async def test_other_clients_keep_working_while_an_upstream_is_dead(open_fault_gateway):
    gw, dying, _, _ = open_fault_gateway
    if dying.process is not None and dying.process.proc.poll() is None:
        dying.kill()
    async with sse_session(gw.sse_url("steady")) as client:
        assert (await client.call_tool("countdown", {"steps": 2, "interval": 0.1})).content[0].text == "counted 2 steps"
    async with streamable_session(gw.streamable_url("steady")) as client:
        assert "countdown" in [t.name for t in (await client.list_tools()).tools]


async def test_a_restarted_upstream_is_served_again_without_touching_the_gateway(open_fault_gateway):
    gw, dying, _, _ = open_fault_gateway
    if dying.process is None or dying.process.proc.poll() is not None:
        dying.start()
    async with streamable_session(gw.streamable_url("dying")) as client:
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
        assert result.content[0].text.endswith("+00:00")
