"""Registered MCP clients: which redirect URIs may be registered, how they are matched, what is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_gateway.oauth_clients import (
    ClientMetadataError,
    ClientRegistry,
    parse_registration,
    redirect_uri_matches,
    redirect_uri_problem,
)
from mcp_gateway.sessions import open_store

ALLOWED = [
    "https://app.example/callback", "https://app.example:8443/cb?x=1", "http://127.0.0.1/cb",
    "http://127.0.0.1:33418/callback", "http://[::1]:9000/cb", "http://localhost:3000/oauth/callback",
]
REFUSED = [
    "", "http://app.example/cb", "http://127.0.0.2.nip.io/cb", "http://localhost.evil.example/cb",
    "http://127.0.0.1@evil.example/cb", "http://evil.example@127.0.0.1/cb", "https://u:p@app.example/cb",
    "https://app.example/cb#x", "https://app.example/cb#", "javascript:alert(1)", "data:text/html,x",
    "vbscript:x", "file:///etc/passwd", "com.example.app:/cb", "//app.example/cb", "/cb", "https:/app.example",
    "https:///cb", "https://app.example/c b", "https://app.example/\tcb", "https://app.example\\@evil.example/",
    "https://app.example:0x1bb/cb", "https://app.example/é", "https://app.example/cb\r\nSet-Cookie: x=1",
    "https://" + "a" * 2000 + ".example/", 42, None,
    "http://127.0.0.1:0/cb", "http://[::1]:00/cb", "https://app.example:0/cb", "http://127.0.0.1:65536/cb",
]


@pytest.mark.parametrize("uri", ALLOWED)
def test_https_and_loopback_http_redirect_uris_may_be_registered(uri):
    assert redirect_uri_problem(uri) is None


@pytest.mark.parametrize("uri", REFUSED)
def test_other_redirect_uris_are_refused(uri):
    assert redirect_uri_problem(uri) is not None


@pytest.mark.parametrize("registered,requested,matches", [
    ("https://app.example/cb", "https://app.example/cb", True),
    ("https://app.example/cb", "https://app.example:443/cb", False),
    ("https://app.example/cb", "https://APP.example/cb", False),
    ("https://app.example/cb", "https://app.example/cb/", False),
    ("https://app.example/cb", "https://app.example/cb?x=1", False),
    ("https://app.example:8443/cb", "https://app.example:9443/cb", False),
    ("http://127.0.0.1:9/cb", "http://127.0.0.1:51234/cb", True),
    ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", True),
    ("http://[::1]:9/cb", "http://[::1]:5000/cb", True),
    ("http://localhost:9/cb", "http://localhost:5000/cb", True),
    ("http://127.0.0.1:9/cb", "http://localhost:9/cb", False),
    ("http://127.0.0.1:9/cb", "http://127.0.0.1:5000/cb2", False),
    ("http://127.0.0.1:9/cb?a=1", "http://127.0.0.1:5000/cb?a=2", False),
    ("http://127.0.0.1:9/cb", "http://127.0.0.1:5000/cb#x", False),
    ("http://127.0.0.1:9/cb", "http://x@127.0.0.1:5000/cb", False),
    ("http://127.0.0.1:9/cb", "https://127.0.0.1:9/cb", False),
    ("http://127.0.0.1:9/cb", "http://127.0.0.1:0/cb", False),
])
def test_redirect_uris_match_exactly_except_a_loopback_port(registered, requested, matches):
    assert redirect_uri_matches(registered, requested) is matches


def test_registration_defaults_and_secrets():
    client, secret = parse_registration({"redirect_uris": ["https://app.example/cb"]})

    assert client.token_endpoint_auth_method == "client_secret_basic" and secret
    assert client.grant_types == ("authorization_code",) and not client.may_refresh
    assert client.secret_matches(secret) and not client.secret_matches(secret + "x")
    assert secret not in json.dumps(client.__dict__)
    response = client.registration_response(secret)
    assert response["client_secret"] == secret and response["client_secret_expires_at"] == 0
    assert "client_secret" not in client.registration_response()

    public, none = parse_registration({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"})
    assert none is None and public.is_public and not public.secret_matches("")


def test_registration_refusals_name_the_rfc_7591_error():
    with pytest.raises(ClientMetadataError) as uri:
        parse_registration({"redirect_uris": ["http://app.example/cb"]})
    with pytest.raises(ClientMetadataError) as grant:
        parse_registration({"redirect_uris": ["https://app.example/cb"], "grant_types": ["refresh_token"]})
    with pytest.raises(ClientMetadataError) as body:
        parse_registration(["not", "an", "object"])

    assert uri.value.error == "invalid_redirect_uri"
    assert grant.value.error == body.value.error == "invalid_client_metadata"


def test_without_a_redirect_uri_only_a_single_registered_one_is_implied():
    one, _ = parse_registration({"redirect_uris": ["https://app.example/cb"]})
    two, _ = parse_registration({"redirect_uris": ["https://app.example/cb", "https://app.example/cb2"]})

    assert one.registered_redirect_uri(None) == "https://app.example/cb"
    assert two.registered_redirect_uri(None) is None
    assert two.registered_redirect_uri("https://app.example/cb2") == "https://app.example/cb2"
    assert two.registered_redirect_uri("https://app.example/cb3") is None


async def test_clients_are_kept_in_the_shared_store(tmp_path: Path):
    store = open_store("sqlite:///s.db", base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)
    other = open_store("sqlite:///s.db", base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)
    try:
        client, _ = parse_registration({"redirect_uris": ["https://app.example/cb"], "client_name": "Editor"})
        await ClientRegistry(store).save(client)

        assert await ClientRegistry(other).get(client.client_id) == client
        for unknown in ("x" * 32, "short", "../../etc", None, 7):
            assert await ClientRegistry(other).get(unknown) is None
        await store.put(f"oauth-client:{'d' * 32}", "{not json", 60)
        assert await ClientRegistry(other).get("d" * 32) is None
    finally:
        await store.close()
        await other.close()
