"""The data plane's pure rules: which methods each MCP route takes, which Content-Type an MCP
POST may carry, which request headers never travel upstream (docs/data-plane.md)."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import taddons, tflow, tutils

from addons.flow_state import set_route
from addons.router import Router
from addons.runtime import Runtime
from mcp_gateway.content_type import json_content_type_problem
from mcp_gateway.header_policy import HeaderStripList, parse_pattern
from mcp_gateway.routing import method_problem, route


@pytest.mark.parametrize("method,target,status", [
    ("GET", "/api/execute/a", None), ("GET", "/api/execute/a/", None), ("GET", "/api/execute/a/sse", None),
    ("POST", "/api/execute/a/messages/?session_id=x", None), ("POST", "/api/execute/a/anything", None),
    ("POST", "/api/execute/a/sse", 405), ("DELETE", "/api/execute/a", 405), ("HEAD", "/api/execute/a/sse", 405),
    ("GET", "/api/execute/a/mcp", 404), ("DELETE", "/api/execute/a/mcp", 404), ("PUT", "/api/execute/a/x", 404),
    ("OPTIONS", "/api/execute/a/messages/", 404),
    ("POST", "/api/streamable/a", None), ("GET", "/api/streamable/a", None), ("DELETE", "/api/streamable/a", None),
    ("PUT", "/api/streamable/a", 405), ("OPTIONS", "/api/streamable/a", 405),
])
def test_each_mcp_route_takes_only_its_methods(method, target, status):
    problem = method_problem(route(target), method)
    assert (problem[0] if problem else None) == status


@pytest.mark.parametrize("values", [
    [], ["application/json"], ["APPLICATION/JSON"], ["application/json; charset=utf-8"],
    ["application/json;charset=UTF-8"], ['application/json; charset="utf-8"'], ["application/json;"],
    ["application/json; profile=x"],
])
def test_utf8_json_is_accepted(values):
    assert json_content_type_problem(values) is None


@pytest.mark.parametrize("values", [
    ["application/json; charset=utf-7"], ["application/json; Charset=UTF-16"], ['application/json; charset="latin1"'],
    ["application/json; charset=utf8"], ["application/json; charset=utf-8; charset=utf-8"],
    ["application/json; charset=utf-8; charset=utf-7"], ["application/json", "application/json"],
    ["application/json; charset"], ['application/json; charset="utf-8'], ["text/plain"], ["text/json"],
    ["application/json-seq"], ["application/jsonx"], [""], ["application/json, text/plain"],
])
def test_anything_else_is_refused(values):
    assert json_content_type_problem(values)


@pytest.mark.parametrize("name,stripped", [
    ("X_User", True), ("x-user-id", True), ("REMOTE_USER", True), ("x_forwarded_for", True), ("Forwarded", True),
    ("impersonate-uid", True), ("x-webauth-user", True), ("X-Consumer-Groups", True), ("true_client_ip", True),
    ("cf-connecting-ip", True), ("x-envoy-internal", True), (" X-User", True),
    ("accept", False), ("mcp-session-id", False), ("content-type", False), ("x-request-id", False),
])
def test_header_names_are_compared_normalised_by_family(name, stripped):
    assert HeaderStripList().strips(name) is stripped


def test_operator_patterns_extend_the_list():
    extended = HeaderStripList(["X-Corp-*", "x_tenant"])
    assert extended.strips("X_CORP_USER") and extended.strips("x-tenant") and not extended.strips("x-tenant-id")
    with pytest.raises(ValueError):
        parse_pattern("X-*-User")


def test_a_body_that_arrived_without_a_declared_length_is_refused_on_get():
    """HTTP/2 can carry a body with no Content-Length: the router refuses it once it is read."""
    router = Router(Runtime())
    with taddons.context(router):
        flow = tflow.tflow(req=tutils.treq(method=b"GET", path=b"/api/streamable/a", authority=b"", content=b"{}"))
        set_route(flow, route("/api/streamable/a"))
        router.request(flow)
        assert flow.response.status_code == 400
        assert json.loads(flow.response.content)["status"] == 400
