"""Small parts of per-user upstream tokens: reading the upstream's 401 challenge, when a token is
due for refresh, and which paths are `/api/connections`."""

from __future__ import annotations

import httpx
import pytest

from mcp_gateway.config import ServerConfig
from mcp_gateway.routing import Area, RouteError, route
from mcp_gateway.upstream_oauth import (
    TokenSet,
    UpstreamOAuth,
    UpstreamOAuthError,
    _endpoints_from,
    _resource_metadata_urls,
)
from mcp_gateway.upstream_oauth_config import UpstreamOAuthSettings

PRM = "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp"


@pytest.mark.parametrize("challenges, urls", [
    ([f'Bearer resource_metadata="{PRM}"'], [PRM]),
    ([f'Bearer error="invalid_token", error_description="x", resource_metadata="{PRM}"'], [PRM]),
    ([f"Bearer resource_metadata={PRM}, scope=\"a\""], [PRM]),
    (['Basic realm="x"', f'Bearer resource_metadata="{PRM}"'], [PRM]),
    (['Bearer resource_metadata="file:///etc/passwd"'], []),
    (['Bearer resource_metadata="gopher://x"'], []),
    (['Bearer resource_metadata=""'], []),
    (['Bearer realm="x"'], []),
    ([], []),
])
def test_only_http_resource_metadata_urls_are_followed(challenges, urls):
    assert _resource_metadata_urls(challenges) == urls


@pytest.mark.parametrize("obtained, expires, now, due", [
    (0, None, 10**10, False),        # no expiry known: used until the upstream refuses it
    (1000, 1600, 1500, False),       # 10 min token, 100 s left
    (1000, 1600, 1571, True),        # inside the 30 s margin
    (1000, 1004, 1002.5, False),     # 4 s token: a quarter of its life as margin
    (1000, 1004, 1003.1, True),
    (1000, 1600, 1700, True),        # expired
])
def test_refresh_is_due_shortly_before_expiry(obtained, expires, now, due):
    assert TokenSet("a", "r", expires_at=expires, obtained_at=obtained).due_for_refresh(now) is due


@pytest.mark.parametrize("target, server", [
    ("/api/connections", None), ("/api/connections/", None), ("/api/connections/github", "github"),
    ("/api/connections/github?user=local:bob", "github"),
])
def test_connection_paths(target, server):
    found = route(target)
    assert (found.area, found.action, found.server) == (Area.API_OTHER, "connections", server)


@pytest.mark.parametrize("target", ["/api/connections/GitHub", "/api/connections/a%2fb", "/api/connections/../servers",
                                    "/api/connections//x"])
def test_hostile_connection_paths_are_refused(target):
    with pytest.raises(RouteError):
        route(target)


def test_deeper_paths_are_not_connection_paths():
    assert route("/api/connections/github/extra").action == ""


# -- protected-resource metadata an upstream names: its own origin and its own resource only ----------

def _upstream_oauth(handler):
    server = ServerConfig("svc", "http://svc.internal:8000", upstream_oauth=UpstreamOAuthSettings())
    return UpstreamOAuth(server, "http://gw.example", store=None, secretbox=None,  # type: ignore[arg-type]
                         client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize("named,document,accepted", [
    ("http://svc.internal:8000/.well-known/oauth-protected-resource/mcp",
     {"resource": "http://svc.internal:8000/mcp", "authorization_servers": ["http://as"]}, True),
    ("http://169.254.169.254/latest/meta-data/", None, True),  # never fetched; the well-known one is
    ("http://svc.internal:8001/prm", None, True),              # another port is another origin
    ("http://svc.internal:8000/.well-known/oauth-protected-resource/mcp",
     {"resource": "http://other.example/mcp", "authorization_servers": ["http://as"]}, False),
    ("http://svc.internal:8000/.well-known/oauth-protected-resource/mcp",
     {"authorization_servers": ["http://as"]}, False),         # no resource: not usable
])
async def test_protected_resource_metadata_comes_from_the_upstreams_origin_for_its_resource(
        named, document, accepted):
    fetched: list[str] = []
    own = {"resource": "http://svc.internal:8000/mcp", "authorization_servers": ["http://as"]}

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if request.method == "POST":
            return httpx.Response(401, headers={"www-authenticate": f'Bearer resource_metadata="{named}"'})
        if str(request.url) == named and document is not None:
            return httpx.Response(200, json=document)
        if str(request.url).startswith("http://svc.internal:8000/.well-known/oauth-protected-resource"):
            return httpx.Response(200, json=own)
        return httpx.Response(404)

    oauth = _upstream_oauth(handler)
    try:
        if accepted:
            assert (await oauth._protected_resource_metadata())["resource"].startswith("http://svc.internal:8000/")
        else:
            with pytest.raises(UpstreamOAuthError, match="not for a resource on"):
                await oauth._protected_resource_metadata()
    finally:
        await oauth.aclose()
    assert all(url.startswith("http://svc.internal:8000/") for url in fetched), fetched


GOOD_METADATA = {"issuer": "https://as.example", "authorization_endpoint": "https://as.example/authorize",
                 "token_endpoint": "https://as.example/token", "registration_endpoint": "https://as.example/register",
                 "revocation_endpoint": "http://127.0.0.1:9/revoke"}
HOSTILE_URLS = ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "gopher://as.example/",
                "https://user:pw@as.example/token", "https://as.example/token#frag", "//as.example/token",
                "/token", "https://as.example:99999/token", "https://as.example/t oken", "https://as.example/tök",
                "https:///token", "https://as.example/t\r\nX: 1"]


def test_discovered_endpoints_that_are_plain_http_urls_are_used():
    endpoints = _endpoints_from(GOOD_METADATA, "http://127.0.0.1:9/mcp")
    assert (endpoints.authorization_endpoint, endpoints.revocation_endpoint) == (
        "https://as.example/authorize", "http://127.0.0.1:9/revoke")


@pytest.mark.parametrize("field", ["authorization_endpoint", "token_endpoint", "registration_endpoint",
                                   "revocation_endpoint"])
@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_discovered_endpoint_that_is_not_a_plain_http_url_is_refused(field, url):
    with pytest.raises(UpstreamOAuthError, match=field):
        _endpoints_from({**GOOD_METADATA, field: url}, None)
