"""The data plane end to end: real `mcp` SDK servers behind `mitmdump -s addons/gateway.py`,
driven by the SDK's own clients, with authentication off."""

from __future__ import annotations

import json
import socket
import time

import anyio
import httpx
import pytest

from tests.support.mcp_clients import sse_session, streamable_session

pytestmark = pytest.mark.timeout(90)


def tool_names(result) -> list[str]:
    return sorted(t.name for t in result.tools)


async def test_sse_transport_lists_and_calls_tools(open_gateway):
    async with sse_session(open_gateway.sse_url("currenttime")) as client:
        assert tool_names(await client.list_tools()) == ["countdown", "current_time_by_timezone"]
        result = await client.call_tool("current_time_by_timezone", {"timezone": "Europe/Berlin"})
        assert not result.is_error
        assert result.content[0].text.startswith("20") and result.content[0].text.endswith(("+01:00", "+02:00"))


async def test_sse_transport_also_served_without_sse_suffix(open_gateway):
    async with sse_session(f"{open_gateway.url}/api/execute/currenttime") as client:
        assert "current_time_by_timezone" in tool_names(await client.list_tools())


@pytest.mark.parametrize("server", ["currenttime", "currenttime-json"], ids=["sse-answers", "json-answers"])
async def test_streamable_transport_lists_and_calls_tools(open_gateway, server):
    async with streamable_session(open_gateway.streamable_url(server)) as client:
        assert tool_names(await client.list_tools()) == ["countdown", "current_time_by_timezone"]
        result = await client.call_tool("current_time_by_timezone", {"timezone": "Asia/Tokyo"})
        assert result.content[0].text.endswith("+09:00")


@pytest.mark.parametrize("transport", ["sse", "streamable"])
async def test_progress_events_arrive_as_they_happen(open_gateway, transport):
    """A tool reports progress every 0.4 s: through the gateway the events must arrive
    spread out, not all at once when the call ends (that would mean buffering)."""
    stamps: list[float] = []

    async def on_progress(progress, total, message):
        stamps.append(time.monotonic())

    session = sse_session(open_gateway.sse_url("currenttime")) if transport == "sse" else \
        streamable_session(open_gateway.streamable_url("currenttime"))
    async with session as client:
        started = time.monotonic()
        result = await client.call_tool("countdown", {"steps": 4, "interval": 0.4}, progress_callback=on_progress)
        finished = time.monotonic()
    assert result.content[0].text == "counted 4 steps"
    assert len(stamps) == 4
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(gap > 0.25 for gap in gaps), f"progress events bunched together: gaps {gaps}"
    assert stamps[0] - started < 1.0, "first progress event held back"
    assert finished - stamps[-1] < 0.35, "result arrived long after the last event"


def test_routing_is_exact(open_gateway):
    """/api/streamable/foo reaches server foo, never foobar (and the reverse)."""
    def server_name(server: str) -> str:
        response = httpx.post(
            open_gateway.streamable_url(server),
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            headers={"accept": "application/json, text/event-stream"}, timeout=10)
        assert response.status_code == 200, response.text
        data = response.text
        if response.headers["content-type"].startswith("text/event-stream"):
            data = next(line[5:].strip() for line in data.splitlines() if line.startswith("data:"))
        return json.loads(data)["result"]["serverInfo"]["name"]

    assert server_name("foo") == "foo"
    assert server_name("foobar") == "currenttime"


@pytest.mark.parametrize("path,status", [
    ("/api/execute/nope/sse", 404),
    ("/api/streamable/nope", 404),
    ("/api/execute/off/sse", 503),
    ("/api/streamable/off", 503),
    ("/api/execute/down/sse", 502),
    ("/api/streamable/down", 502),
    ("/api/streamable/currenttime/extra", 404),
    ("/api/execute/currenttime/..%2f..%2ffoo/sse", 400),
    ("/api/execute/currenttime/%2e%2e/foo", 400),
    ("/api/execute/currenttime/../foo/sse", 400),
    ("/api/execute/foo%2fbar/sse", 400),
    ("/api/execute/foo%5cbar/sse", 400),
    ("/api/execute/foo\\bar/sse", 400),
    ("/api/execute//foo/sse", 400),
    ("/api/execute/foo;bar/sse", 400),
    ("/api/execute/foo/sse;x=1", 400),
    ("/api/execute/FOO/sse", 400),
    ("/api/execute/Foo/sse", 400),
    ("/api/execute/foo%252fbar/sse", 400),
    ("/api/execute/foo%00/sse", 400),
    ("/api/execute/foo/./sse", 400),
    ("/API/execute/foo/sse", 404),
    ("/nothing-here", 404),
])
def test_errors_are_clear_json(open_gateway, path, status):
    with socket.create_connection(("127.0.0.1", open_gateway.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split()[1] == str(status).encode(), raw[:300]
    assert b"application/json" in head.lower()
    payload = json.loads(body)
    assert payload["status"] == status and payload["message"]
    assert b"<html" not in body.lower() and b"Traceback" not in body


def test_request_body_cap_and_chunked_bodies(open_gateway, recorder):
    before = len(recorder.requests)
    too_big = httpx.post(open_gateway.streamable_url("recorder"), content=b"x" * (1024 * 1024 + 1),
                         headers={"content-type": "application/json"}, timeout=10)
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"

    def chunks():
        yield b'{"jsonrpc": "2.0", '
        yield b'"id": 1, "method": "ping"}'
    chunked = httpx.post(open_gateway.streamable_url("recorder"), content=chunks(), timeout=10)
    assert chunked.status_code == 411 and chunked.json()["status"] == 411
    assert len(recorder.requests) == before, "a refused body reached the upstream"


def test_absolute_form_request_target_is_refused(open_gateway, recorder):
    before = len(recorder.requests)
    with socket.create_connection(("127.0.0.1", open_gateway.port), timeout=10) as sock:
        sock.sendall(f"GET {recorder.url}/api/streamable/recorder HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     .encode())
        raw = sock.recv(65536)
    assert raw.split()[1] == b"400"
    assert len(recorder.requests) == before


def test_upstream_gets_its_own_host_and_none_of_the_callers_credentials(open_gateway, recorder):
    response = httpx.post(
        open_gateway.streamable_url("recorder"),
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"authorization": "Bearer secret-token", "cookie": "mcp_gateway_session=abc; other=1",
                 "x-user": "admin", "x-groups": "mcp-admin", "x-forwarded-for": "10.0.0.1",
                 "mcp-protocol-version": "2025-06-18"},
        timeout=10)
    assert response.status_code == 200
    seen = recorder.requests[-1]
    assert seen.path == "/mcp"
    assert seen.headers["host"] == f"127.0.0.1:{recorder.port}"
    assert "authorization" not in seen.headers
    assert seen.headers.get("cookie") == "other=1"
    for name in ("x-user", "x-groups", "x-forwarded-for"):
        assert name not in seen.headers
    assert seen.headers["mcp-protocol-version"] == "2025-06-18"


def test_exception_in_a_gateway_hook_refuses_and_forwards_nothing(open_gateway, recorder):
    before = len(recorder.requests)
    response = httpx.post(open_gateway.streamable_url("recorder") + "?fault=1",
                          json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert response.status_code == 500
    assert response.json()["error"] == "gateway_error"
    assert "Traceback" not in response.text and "fault injected" not in response.text
    time.sleep(0.2)
    assert len(recorder.requests) == before, "the request reached the upstream although the hook failed"
    # and the gateway keeps serving
    ok = httpx.post(open_gateway.streamable_url("recorder"), json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                    timeout=10)
    assert ok.status_code == 200


def _established_connections_to(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                count += 1
    return count


async def test_client_disconnect_closes_the_upstream_stream(open_gateway, upstream_foo):
    """A client that goes away mid-stream must not leave the upstream stream open."""
    baseline = _established_connections_to(upstream_foo.port)
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", open_gateway.sse_url("foo")) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    assert line.startswith("data: /api/execute/foo/messages/?session_id=")
                    break
            assert _established_connections_to(upstream_foo.port) > baseline
    with anyio.fail_after(15):
        while _established_connections_to(upstream_foo.port) > baseline:
            await anyio.sleep(0.1)
    async with sse_session(open_gateway.sse_url("foo")) as client:
        assert "countdown" in tool_names(await client.list_tools())


def test_a_slow_upstream_gets_a_clear_504(tmp_path):
    from tests.support.gateway import run_gateway, server_entry
    from tests.support.recorder import recording_upstream

    with recording_upstream() as slow:
        slow.delay = 4.0
        with run_gateway(tmp_path, [server_entry("slow", slow.url)], env={"MCP_AUTH_ENABLED": "false"},
                         gateway={"response_timeout": "1s", "connect_timeout": "1s"}) as gw:
            started = time.monotonic()
            response = httpx.post(gw.streamable_url("slow"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                  timeout=10)
            elapsed = time.monotonic() - started
            assert response.status_code == 504
            assert response.json()["error"] == "gateway_timeout" and "'slow'" in response.json()["message"]
            assert elapsed < 3.5, f"the 504 took {elapsed:.1f}s"
            # the gateway keeps serving after a timeout
            slow.delay = 0
            assert httpx.post(gw.streamable_url("slow"), json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                              timeout=10).status_code == 200
