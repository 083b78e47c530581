"""Prometheus metrics, served on their own admin port (`[gateway] metrics_port`, off by default).

A separate listener rather than a path on the proxy: the proxy's port is the public one,
and a path on it would be one routing mistake away from the internet. The metrics port
binds `metrics_host` (loopback by default) and the proxy never forwards to it.

What is counted, once per flow when it ends (as the auditor records it):
requests by server, route, decision and status; the time to the response's headers;
open event streams; logins by provider and outcome — seen in the login app's answers as
they pass through the proxy, so no second process or port is needed for them; live
sessions (SQLite only: counting Redis keys would mean a SCAN of the whole keyspace).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from contextlib import closing
from typing import Iterator

from mitmproxy import http
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from mcp_gateway.audit_log import dropped_records
from mcp_gateway.config import WORKER_INDEX, GatewayConfig
from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.scopes import is_tool_name
from mcp_gateway.sessions import SqliteSessionStore

from .flow_state import final_status, state_of
from .runtime import Runtime

log = logging.getLogger(__name__)

MAX_SHADOW_TOOLS = 1000  # distinct tool label values; tool names are the caller's to choose
ANSWERED = "gateway.metrics.answered"   # the response's headers have been timed
STREAM = "gateway.metrics.stream"       # the server label of an event stream counted as open
NONE = "-"  # label value when a request names no known server (unknown names would be unbounded labels)


class Metrics:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        # A registry of our own: a hot reload of the -s script builds a new Metrics, and the
        # global registry would refuse the same metric names a second time.
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "mcp_gateway_requests", "Requests by server, route, the gateway's decision and the status answered.",
            ["server", "route", "decision", "status"], registry=self.registry)
        self.latency = Histogram(
            "mcp_gateway_response_latency_seconds",
            "Time from the request's headers to the response's headers (for a stream: until it opens).",
            ["server", "route"], registry=self.registry)
        self.open_streams = Gauge(
            "mcp_gateway_open_streams", "Event streams (text/event-stream responses) open now.", ["server"],
            registry=self.registry)
        self.logins = Counter(
            "mcp_gateway_logins", "Logins through the login app, by provider and outcome "
            "(success, failure, throttled, error).", ["provider", "outcome"], registry=self.registry)
        self.shadow_refusals = Counter(
            "mcp_gateway_shadow_refusals", "Requests the shadow policy would refuse that the policy in force "
            "allowed, by server and tool (docs/policies.md, \"Shadow mode\").", ["server", "tool"],
            registry=self.registry)
        self._shadow_tools: set[str] = set()
        self.registry.register(LiveSessions(runtime))
        self.registry.register(AuditRecordsDropped())
        self.registry.register(PolicyInfo(runtime))
        self._server = None
        self._address: tuple[str, int] | None = None
        self._running = False

    # -- the listener --------------------------------------------------------------------------

    def running(self) -> None:
        self._running = True
        self._listen()

    def configure(self, updated: set[str]) -> None:
        if "gateway_config" in updated and self._running:
            self._listen()

    def done(self) -> None:
        self._stop()

    def _listen(self) -> None:
        address = metrics_address(self.runtime.config)
        if address == self._address:
            return
        self._stop()
        if address is None:
            return
        try:
            self._server, _ = start_http_server(address[1], address[0], registry=self.registry)
        except OSError as e:
            # At start-up an error stops mitmproxy: a configured metrics port that cannot be
            # bound is a broken deployment, not something to find out from an empty dashboard.
            log.error("metrics: cannot listen on %s:%d: %s", address[0], address[1], e.strerror or e)
            return
        self._address = address
        log.info("metrics: Prometheus metrics on http://%s:%d/metrics", *address)

    def _stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = None
        self._address = None

    # -- counting ------------------------------------------------------------------------------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._answered(flow)
        response = flow.response
        if response is not None and response.stream and _media_type(response) == "text/event-stream":
            server = self._server_label(flow)
            flow.metadata[STREAM] = server
            self.open_streams.labels(server).inc()

    def response(self, flow: http.HTTPFlow) -> None:
        self._answered(flow)  # answers the gateway made itself never pass `responseheaders`
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def _answered(self, flow: http.HTTPFlow) -> None:
        started = state_of(flow).started
        if started is None or flow.metadata.get(ANSWERED):
            return
        flow.metadata[ANSWERED] = True
        self.latency.labels(self._server_label(flow), _route_label(flow)).observe(time.monotonic() - started)

    def _finish(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state.counted or not state.seen:
            return
        state.counted = True
        if STREAM in flow.metadata:
            self.open_streams.labels(flow.metadata.pop(STREAM)).dec()
        decision = state.outcome
        self.requests.labels(self._server_label(flow), _route_label(flow), decision.verdict,
                             str(final_status(flow))).inc()
        if decision.shadow and not decision.shadow.allowed and decision.verdict == "allowed":
            self.shadow_refusals.labels(self._server_label(flow), self._shadow_tool(decision.tool)).inc()
        if provider := self._login_provider(flow):
            self.logins.labels(provider, _login_outcome(flow)).inc()

    def _server_label(self, flow: http.HTTPFlow) -> str:
        found = state_of(flow).route
        registry = self.runtime.registry
        if found is None or not found.server or registry is None or registry.get(found.server) is None:
            return NONE
        return found.server

    def _shadow_tool(self, tool: str | None) -> str:
        if not tool or not is_tool_name(tool):
            return NONE
        if tool not in self._shadow_tools and len(self._shadow_tools) >= MAX_SHADOW_TOOLS:
            return "other"
        self._shadow_tools.add(tool)
        return tool

    def _login_provider(self, flow: http.HTTPFlow) -> str | None:
        """The provider a login request finishes with: the local form, or an IdP's callback."""
        path = flow.request.path.split("?")[0]
        if flow.request.method == "POST" and path == "/oauth/login/local":
            return "local"
        if flow.request.method != "GET" or not (path == "/oauth/callback" or path.startswith("/oauth/callback/")):
            return None
        # Only the configured IdP is a label value: the path is the caller's to choose.
        configured = self.runtime.config.auth.provider_type if self.runtime.config else "local"
        named = path.removeprefix("/oauth/callback").strip("/") or "generic"
        return named if named == configured != "local" else "other"


def metrics_address(config: GatewayConfig | None) -> tuple[str, int] | None:
    """Where this process serves metrics: `metrics_port`, or the next ports for the workers of
    `launcher run --workers N` (worker i of N: metrics_port + i - 1), which cannot share one."""
    if config is None or not config.metrics_port:
        return None
    index = os.environ.get(WORKER_INDEX, "")
    worker = int(index) if index.isdigit() and int(index) > 0 else 1
    return config.metrics_host, config.metrics_port + worker - 1


def _login_outcome(flow: http.HTTPFlow) -> str:
    response = flow.response
    if response is None or response.status_code >= 500:
        return "error"
    if any(value for value, _ in response.cookies.get_all(SESSION_COOKIE)):
        return "success"
    return "throttled" if response.status_code == 429 else "failure"


def _route_label(flow: http.HTTPFlow) -> str:
    found = state_of(flow).route
    return found.area.value if found is not None else "none"


def _media_type(response: http.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


class LiveSessions:
    """`mcp_gateway_sessions{kind}`, counted at scrape time in the metrics thread, never on the proxy's loop."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def describe(self) -> list:
        return []  # collected lazily: the store may not exist when the registry is built

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self.runtime.store
        store = getattr(store, "inner", store)  # the SQLite store under the session cache
        if not isinstance(store, SqliteSessionStore) or not store.path.exists():
            return
        now = time.time()
        try:
            read_only = f"{store.path.resolve().as_uri()}?mode=ro"  # never creates the file
            with closing(sqlite3.connect(read_only, uri=True, timeout=1.0)) as conn:
                rows = conn.execute(
                    "SELECT kind, COUNT(*) FROM sessions WHERE expires_at > ? AND last_seen_at > ? GROUP BY kind",
                    (now, now - store.idle_timeout)).fetchall()
        except sqlite3.Error as e:
            log.warning("metrics: cannot count sessions in %s: %s", store.path, e)
            return
        family = GaugeMetricFamily("mcp_gateway_sessions", "Live sessions in the SQLite store, by kind "
                                   "(browser logins, access tokens issued to MCP clients).", labels=["kind"])
        counts = dict(rows)
        for kind in ("browser", "access", *sorted(set(counts) - {"browser", "access"})):
            family.add_metric([kind], counts.get(kind, 0))
        yield family


class AuditRecordsDropped:
    """`mcp_gateway_audit_records_dropped_total`: audit records lost because the audit file's
    disk did not keep up (see mcp_gateway/audit_log.py)."""

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("mcp_gateway_audit_records_dropped",
                                  "Audit records dropped because the audit file could not keep up.",
                                  value=dropped_records())


class PolicyInfo:
    """`mcp_gateway_policy_info{version}` 1: the content hash of the policy in force, as in /healthz."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        version = getattr(self.runtime.policies, "version", None)
        if version is None:
            return
        family = GaugeMetricFamily("mcp_gateway_policy_info", "The policy version in force (a content hash of "
                                   "the policy files, as /healthz reports it).", labels=["version"])
        family.add_metric([version], 1)
        yield family
