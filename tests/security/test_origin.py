"""`Origin` on /api/*: a browser page of another origin (a cross-site page, a DNS-rebinding
attack) is refused before anything else happens (as the MCP specification requires);
requests without Origin (MCP clients, scripts) and from the gateway's own origin go on."""

from __future__ import annotations

import json

import pytest

from tests.security.hostile import assert_json_refusal, request, session_cookie

pytestmark = pytest.mark.timeout(60)

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
API_REQUESTS = [
    ("POST", "/api/streamable/recorder"),
    ("GET", "/api/streamable/recorder"),
    ("DELETE", "/api/streamable/recorder"),
    ("GET", "/api/execute/recorder/sse"),
    ("POST", "/api/execute/recorder/messages/?session_id=0123456789abcdef0123456789abcdef"),
    ("GET", "/api/servers"),
    ("POST", "/api/servers/recorder/toggle"),
    ("OPTIONS", "/api/streamable/recorder"),
    ("GET", "/api/nothing-here"),
]


def foreign_origins(public: str) -> list[str]:
    host_port = public.split("://", 1)[1]
    port = host_port.rsplit(":", 1)[1]
    return [
        "https://evil.example",
        "null",
        "http://127.0.0.1:1",
        f"http://localhost:{port}",               # DNS rebinding: same port, another name
        f"http://{host_port}.evil.example",
        f"https://{host_port}",                   # another scheme
        public.upper(),
        public + "/",
        public + "/api",
        f"{public}, https://evil.example",
        "",
    ]


@pytest.mark.parametrize("method,path", API_REQUESTS, ids=[f"{m} {p[:40]}" for m, p in API_REQUESTS])
def test_a_foreign_origin_is_refused_on_every_api_request(auth_gateway, recorder, signed_in, method, path):
    before = len(recorder.requests)
    for origin in foreign_origins(auth_gateway.url):
        answer = request(auth_gateway.port, method, path, [session_cookie(signed_in["admin"]), ("Origin", origin)],
                         PING if method == "POST" else b"")
        assert_json_refusal(answer, 403)
        assert "cross-origin" in answer.json()["message"]
        assert answer.header("access-control-allow-origin") is None
    assert len(recorder.requests) == before


def test_two_origin_headers_are_refused_even_when_one_is_ours(auth_gateway, signed_in):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), ("Origin", auth_gateway.url), ("Origin", "https://evil.example")],
                     PING)
    assert_json_refusal(answer, 403)


def test_a_foreign_origin_is_refused_before_authentication(auth_gateway):
    """No credentials at all: still 403, so a page cannot probe who is signed in."""
    answer = request(auth_gateway.port, "GET", "/api/execute/recorder/sse", [("Origin", "https://evil.example")])
    assert_json_refusal(answer, 403)


@pytest.mark.parametrize("origin", [None, "own"])
def test_no_origin_or_the_gateways_own_origin_goes_on(auth_gateway, recorder, signed_in, origin):
    headers = [session_cookie(signed_in["admin"])]
    if origin:
        headers.append(("Origin", auth_gateway.url))
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder", headers, PING)
    assert answer.status == 200, answer.head
    assert "origin" not in recorder.requests[-1].headers  # checked here, not passed on


def test_public_metadata_stays_readable_from_any_origin(auth_gateway):
    """Protected-resource metadata is public and meant for browser-based clients of any origin."""
    answer = request(auth_gateway.port, "GET", "/.well-known/oauth-protected-resource/api/streamable/currenttime",
                     [("Origin", "https://client.example")])
    assert answer.status == 200 and answer.json()["resource"].endswith("/api/streamable/currenttime")


def test_the_login_app_judges_origins_itself(auth_gateway, signed_in):
    """/oauth/* is the login app's: reading /oauth/me is harmless, a cross-site logout is refused there."""
    me = request(auth_gateway.port, "GET", "/oauth/me", [session_cookie(signed_in["bob"]), ("Origin", "https://x.example")])
    assert me.status == 200
    logout = request(auth_gateway.port, "POST", "/oauth/logout",
                     [session_cookie(signed_in["bob"]), ("Origin", "https://evil.example")])
    assert logout.status == 403
