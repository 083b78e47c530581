"""The raw request path decides the route; anything readable two ways is refused."""

from __future__ import annotations

import pytest

from mcp_gateway.routing import Area, RouteError, route


@pytest.mark.parametrize("target,area,server,rest,query", [
    ("/api/execute/foo", Area.SSE, "foo", "", ""),
    ("/api/execute/foo/sse", Area.SSE, "foo", "/sse", ""),
    ("/api/execute/foobar/sse", Area.SSE, "foobar", "/sse", ""),  # a name is matched whole, not by prefix
    ("/api/execute/foo/messages/?session_id=abc", Area.SSE, "foo", "/messages/", "session_id=abc"),
    ("/api/streamable/foo-bar_1", Area.STREAMABLE, "foo-bar_1", "", ""),
    ("/api/streamable/foo/", Area.STREAMABLE, "foo", "/", ""),
    ("/api/servers", Area.REGISTRY, None, "", ""),
    ("/api/servers/foo/toggle", Area.REGISTRY, "foo", "", ""),
    ("/oauth/login?next=/x", Area.LOGIN, None, "", "next=/x"),
    ("/.well-known/oauth-authorization-server", Area.LOGIN, None, "", ""),
    ("/.well-known/oauth-protected-resource/api/streamable/foo", Area.RESOURCE_METADATA, "foo", "streamable", ""),
    ("/healthz", Area.HEALTH, None, "", ""),
])
def test_routes(target, area, server, rest, query):
    found = route(target)
    assert (found.area, found.server, found.rest, found.query) == (area, server, rest, query)


@pytest.mark.parametrize("target", [
    "/api/execute/a/..%2fb", "/api/execute/a/%2e%2e/b", "/api/execute/a%2fb", "/api/execute/a%2Fb", "/api/execute/a%5cb",
    "/api/execute/a%252fb", "/api/execute/a/../b", "/api/execute/a/./b", "/api/execute//a", "/api/execute/a//sse",
    "/api/execute/a;b", "/api/execute/a/sse;jsessionid=1", "/api/execute/a\\b", "/api/execute/A", "/api/execute/a b",
    "/api/execute/a\tb", "/api/execute/a%00", "/api/execute/a%", "/api/execute/a%zz", "/api/execute/ä",
    "/api/execute/a%23/sse", "/api/execute/a%3f/sse", "/api/execute/a%3b/sse", "http://evil/api/execute/a",
    "/api/execute/a/sse?x=1\r\nHost: evil", "/api/execute/" + "a" * 65,
])
def test_ambiguous_paths_are_refused(target):
    with pytest.raises(RouteError) as refused:
        route(target)
    assert refused.value.status == 400


def test_an_overlong_path_is_414():
    with pytest.raises(RouteError) as refused:
        route("/" + "a" * 5000)
    assert refused.value.status == 414


def test_unknown_paths_are_not_routed():
    assert route("/favicon.ico") is None and route("/API/execute/a") is None and route("/registryx") is None


def test_the_registry_pages_go_to_the_login_app():
    for path in ("/", "/registry/servers/a", "/registry/access", "/registry/static/registry.css"):
        assert route(path).area is Area.LOGIN
    assert route("/api/servers/a/tools").action == "tools"
