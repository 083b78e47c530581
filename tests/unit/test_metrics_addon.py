"""The metrics addon at the unit level: label values stay bounded, streams are counted once."""

from __future__ import annotations

import dataclasses
import os
import socket

import httpx
import pytest
from mitmproxy import http
from mitmproxy.test import taddons

from addons.flow_state import set_route, state_of
from addons.metrics import WORKER_INDEX, Metrics, metrics_address
from mcp_gateway.audit_log import AuditLog
from mcp_gateway.routing import route
from tests.support.processes import free_port
from tests.unit.test_addons import flow_for, runtime  # noqa: F401  (runtime is a fixture)


def finished(metrics: Metrics, path: str, method: str, response: http.Response | None) -> http.HTTPFlow:
    flow = flow_for(path, method)
    state_of(flow).seen, state_of(flow).started = True, 0.0
    set_route(flow, route(path))
    flow.response = response
    metrics.response(flow) if response is not None else metrics.error(flow)
    return flow


def logins(metrics: Metrics, provider: str, outcome: str) -> float:
    return metrics.registry.get_sample_value("mcp_gateway_logins_total",
                                             {"provider": provider, "outcome": outcome}) or 0.0


@pytest.mark.parametrize("path,method,answer,provider,outcome", [
    ("/oauth/login/local", "POST", http.Response.make(303, b"", {"set-cookie": "mcp_gateway_session=t0k3n; Path=/"}),
     "local", "success"),
    ("/oauth/login/local", "POST", http.Response.make(401, b"wrong"), "local", "failure"),
    ("/oauth/login/local", "POST", http.Response.make(429, b"wait"), "local", "throttled"),
    ("/oauth/login/local", "POST", None, "local", "error"),
    # A cleared cookie is no login; a callback for a provider that is not configured is "other",
    # never a label value taken from the path.
    ("/oauth/callback/local", "GET", http.Response.make(302, b"", {"set-cookie": "mcp_gateway_session=; Max-Age=0"}),
     "other", "failure"),
    ("/oauth/callback/x-attacker-chosen", "GET", http.Response.make(400, b""), "other", "failure"),
])
def test_logins_by_provider_and_outcome(runtime, path, method, answer, provider, outcome):  # noqa: F811
    metrics = Metrics(runtime)
    with taddons.context(metrics):
        finished(metrics, path, method, answer)
    assert logins(metrics, provider, outcome) == 1
    assert metrics.registry.get_sample_value("mcp_gateway_logins_total",
                                             {"provider": "x-attacker-chosen", "outcome": "failure"}) is None


def test_other_requests_are_not_logins(runtime):  # noqa: F811
    metrics = Metrics(runtime)
    with taddons.context(metrics):
        finished(metrics, "/oauth/me", "GET", http.Response.make(200, b"{}"))
        finished(metrics, "/oauth/login/local", "GET", http.Response.make(405, b""))
    assert not [s for family in metrics.registry.collect() if family.name == "mcp_gateway_logins"
                for s in family.samples]


def test_a_stream_is_open_until_its_flow_ends_and_is_closed_once(runtime):  # noqa: F811
    metrics = Metrics(runtime)
    open_streams = lambda: metrics.registry.get_sample_value("mcp_gateway_open_streams", {"server": "a"})  # noqa: E731
    with taddons.context(metrics):
        flow = flow_for("/api/execute/a/sse")
        state_of(flow).seen, state_of(flow).started = True, 0.0
        set_route(flow, route("/api/execute/a/sse"))
        flow.response = http.Response.make(200, b"", {"content-type": "text/event-stream; charset=utf-8"})
        flow.response.stream = True
        metrics.responseheaders(flow)
        assert open_streams() == 1
        metrics.error(flow)      # the client went away
        metrics.response(flow)   # and mitmproxy reports the end as well
    assert open_streams() == 0
    assert metrics.registry.get_sample_value("mcp_gateway_requests_total", {
        "server": "a", "route": "execute", "decision": "allowed", "status": "200"}) == 1


def test_the_listener_follows_the_config_and_stops_with_the_addon(runtime, caplog):  # noqa: F811
    port = free_port()
    runtime.config = dataclasses.replace(runtime.config, metrics_port=port)
    metrics = Metrics(runtime)
    with taddons.context(metrics):
        metrics.running()
        try:
            assert "mcp_gateway_open_streams" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            metrics.done()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            runtime.config = dataclasses.replace(runtime.config, metrics_port=taken.getsockname()[1])
            metrics.running()
        assert "metrics: cannot listen on 127.0.0.1:" in caplog.text  # an error: mitmproxy stops at start-up
        metrics.done()


def test_each_worker_of_the_launcher_gets_its_own_metrics_port(runtime, monkeypatch):  # noqa: F811
    config = dataclasses.replace(runtime.config, metrics_port=9464)
    assert metrics_address(config) == ("127.0.0.1", 9464)
    monkeypatch.setenv(WORKER_INDEX, "3")
    assert metrics_address(config) == ("127.0.0.1", 9466)
    assert metrics_address(dataclasses.replace(config, metrics_port=0)) is None


def test_dropped_audit_records_are_a_counter(runtime, tmp_path):
    metrics = Metrics(runtime)
    stalled = tmp_path / "audit.fifo"
    os.mkfifo(stalled)  # a writer blocked in open(): nothing leaves the queue
    before = metrics.registry.get_sample_value("mcp_gateway_audit_records_dropped_total")
    audit = AuditLog(stalled, max_queued=1)
    for n in range(3):
        audit.append({"n": n})
    assert metrics.registry.get_sample_value("mcp_gateway_audit_records_dropped_total") - before == 2
    reader = os.open(stalled, os.O_RDONLY | os.O_NONBLOCK)
    try:
        audit.close()
    finally:
        os.close(reader)
