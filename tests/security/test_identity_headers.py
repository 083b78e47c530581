"""Identity and forwarding headers are stripped by family, whatever their spelling: names are
compared case-insensitively with `_` read as `-` (WSGI servers map `X_User` to `X-User`), and
operators add families of their own with `[gateway] strip_request_headers`. What the upstream
receives is read from the recording upstream."""

from __future__ import annotations

import json

import pytest

from mcp_gateway.header_policy import HeaderStripList, normalise
from tests.security.hostile import request, session_cookie
from tests.support.gateway import run_gateway, server_entry

pytestmark = pytest.mark.timeout(60)

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()

SPELLINGS = [
    # underscore forms a WSGI server reads as the dashed name
    "X_User", "x_user_id", "Remote_User", "REMOTE_USER", "X_Forwarded_For", "X_FORWARDED_HOST", "x_real_ip",
    "X_Auth_Request_Email", "X-Forwarded_User", "X_Remote_User",
    # families
    "Impersonate-User", "Impersonate-Group", "Impersonate-Extra-Scopes", "X-Webauth-User", "X-WEBAUTH-Groups",
    "X-Consumer-ID", "X-Consumer-Username", "X-Consumer-Custom-ID", "X-Credential-Identifier",
    "X-Anonymous-Consumer", "True-Client-IP", "CF-Connecting-IP", "Cf-Connecting-Ipv6", "Fastly-Client-IP",
    "X-Client-IP", "X-Cluster-Client-IP", "X-Envoy-External-Address", "X-Envoy-Original-Path",
    "X-Envoy-Peer-Metadata", "X-Auth-Request-User", "X-Auth-Request-Preferred-Username", "X-Remote-Group",
    "X-Amzn-Oidc-Identity", "X-Amzn-Mtls-Clientcert", "Remote-Groups", "Remote-Email", "Remote-Name",
    "X-Pomerium-Claim-Email", "X-Vouch-User", "OIDC_CLAIM_email", "Tailscale-User-Login", "X-Ms-Token-Aad-Id-Token",
    "X-Authenticated-User", "X-Forwarded-Client-Cert", "X-Original-Forwarded-For", "Forwarded",
    "X-HTTP-Method-Override", "X_HTTP_Method_Override",
]


@pytest.mark.parametrize("name", SPELLINGS)
def test_every_spelling_of_an_identity_header_is_stripped(auth_gateway, recorder, signed_in, name):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), (name, "admin")], PING)
    assert answer.status == 200, answer.head
    received = {normalise(header) for header in recorder.requests[-1].headers}
    assert normalise(name) not in received, f"{name} reached the upstream"
    assert "admin" not in [v for k, v in recorder.requests[-1].headers.items() if k not in ("cookie",)]


@pytest.mark.parametrize("name", SPELLINGS[:12])
def test_a_spelled_identity_header_grants_nothing(auth_gateway, recorder, signed_in, name):
    """dana may not use the recorder: an identity header in any spelling does not make her admin."""
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["dana"]), (name, "admin")], PING)
    assert answer.status == 403


@pytest.mark.parametrize("name", ["Accept", "Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID",
                                  "User-Agent", "X-Request-Id", "X-Trace"])
def test_mcp_and_ordinary_headers_are_kept(name):
    assert not HeaderStripList().strips(name)


@pytest.fixture(scope="module")
def extended_gateway(tmp_path_factory, recorder):
    with run_gateway(tmp_path_factory.mktemp("gw-strip"), [server_entry("recorder", recorder.url)],
                     env={"MCP_AUTH_ENABLED": "false"},
                     gateway={"strip_request_headers": ["X-Corp-*", "X_Tenant"]}) as gw:
        yield gw


@pytest.mark.parametrize("name,stripped", [
    ("X-Corp-User", True), ("x_corp_groups", True), ("X-CORP-", True), ("X-Tenant", True), ("x_tenant", True),
    ("X-Tenant-Id", False), ("X-Corporate", False), ("X_User", True), ("X-Trace", False),
])
def test_operators_extend_the_list_in_config(extended_gateway, recorder, name, stripped):
    answer = request(extended_gateway.port, "POST", "/api/streamable/recorder", [(name, "v")], PING)
    assert answer.status == 200, answer.head
    received = {normalise(header) for header in recorder.requests[-1].headers}
    assert (normalise(name) not in received) is stripped


@pytest.mark.parametrize("pattern", ["*", "X Corp", "X-Corp-**", "X-*-User", "", "Ä"])
def test_a_pattern_that_is_not_a_header_name_stops_start_up(tmp_path, pattern):
    from mcp_gateway.config import ConfigError, load_config
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nstrip_request_headers = ["{pattern}"]\n[auth]\nenabled = false\n')
    with pytest.raises(ConfigError, match="strip_request_headers"):
        load_config(path, env={})
