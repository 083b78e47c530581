"""Stock MCP clients connect with OAuth (issue 6), end to end with real processes: the gateway
(`mitmdump -s addons/gateway.py`) with its login app, panva's oidc-provider as the IdP, MCP
servers built with the `mcp` SDK, and the SDK's own `OAuthClientProvider`, which is given
nothing but the server's URL.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.support.facade import REDIRECT_URI, Facade
from tests.support.gateway import run_gateway, server_entry
from tests.support.headless import headless_authorize
from tests.support.mcp_clients import ACCEPT, READ_TIMEOUT, streamable_session
from tests.support.oidc_provider import running_oidc_provider
from tests.support.processes import free_port

from .conftest import wait_for_login_app

pytestmark = pytest.mark.timeout(90)

AGENT_AUDIENCE = "https://mcp-gateway.test/agents"
UPSTREAM_SECRET = "Bearer upstream-secret-for-recorder"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def idp_gateway(tmp_path_factory, upstream_sse_answers, upstream_json_answers, recorder):
    """A gateway whose people log in at a real OIDC provider and whose agents bring its JWTs."""
    tmp = tmp_path_factory.mktemp("gw-mcp-oauth")
    port = free_port()
    with running_oidc_provider(tmp / "idp") as idp:
        idp.add_user("dana", "dana-password", groups=["mcp-server-currenttime"])
        gateway_client = idp.add_client("gateway", redirect_uris=[f"http://127.0.0.1:{port}/oauth/callback"])
        idp.add_client("agent-currenttime", grant_types=["client_credentials"], access_token_audience=AGENT_AUDIENCE,
                       access_token_scope="", access_token_groups=["mcp-server-currenttime"])
        (tmp / "upstream-token").write_text(UPSTREAM_SECRET + "\n")
        servers = [
            server_entry("currenttime", upstream_sse_answers.url),
            server_entry("currenttime-json", upstream_json_answers.url),
            server_entry("recorder", recorder.url, upstream_header="Authorization",
                         upstream_value_file=str(tmp / "upstream-token")),
            server_entry("recorder-env", recorder.url, upstream_header="X-Api-Key",
                         upstream_value_env="RECORDER_API_KEY"),
        ]
        auth = {"enabled": True, "provider_type": "generic",
                "generic": {"client_id": "gateway", "issuer": idp.issuer, "bearer_audiences": [AGENT_AUDIENCE]}}
        env = {"MCP_AUTH_CLIENT_SECRET": gateway_client.client_secret, "RECORDER_API_KEY": "key-from-env"}
        with run_gateway(tmp, servers, auth=auth, env=env, port=port) as gw:
            wait_for_login_app(gw)
            gw.idp = idp
            yield gw


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def oauth_provider(server_url: str, browser: httpx.AsyncClient, username: str, password: str,
                   storage: MemoryStorage) -> OAuthClientProvider:
    """The SDK's provider; its redirect handler is a headless browser: IdP login, then the gateway's consent."""
    landed: list[httpx.URL] = []

    async def redirect_handler(authorization_url: str) -> None:
        landed.append(await headless_authorize(browser, authorization_url, username, password,
                                               stop_at_prefix=REDIRECT_URI, consent_action="allow"))

    async def callback_handler() -> AuthorizationCodeResult:
        url = landed.pop()
        return AuthorizationCodeResult(code=url.params["code"], state=url.params.get("state"),
                                       iss=url.params.get("iss"))

    metadata = OAuthClientMetadata(client_name="SDK test client", redirect_uris=[REDIRECT_URI],
                                   grant_types=["authorization_code", "refresh_token"])
    return OAuthClientProvider(server_url, metadata, storage, redirect_handler, callback_handler)


@asynccontextmanager
async def sdk_session(transport: str, url: str, auth: OAuthClientProvider):
    if transport == "sse":
        async with Client(sse_client(url, timeout=10, sse_read_timeout=READ_TIMEOUT, auth=auth),
                          read_timeout_seconds=READ_TIMEOUT) as client:
            yield client
        return
    async with create_mcp_http_client(auth=auth) as http:
        async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=READ_TIMEOUT) as client:
            yield client


@pytest.mark.parametrize("transport", ["streamable", "sse"])
async def test_sdk_client_given_only_the_url_discovers_registers_logs_in_and_calls_tools(idp_gateway, transport):
    url = idp_gateway.streamable_url("currenttime") if transport == "streamable" else idp_gateway.sse_url("currenttime")
    storage = MemoryStorage()
    async with httpx.AsyncClient(timeout=15) as browser:
        auth = oauth_provider(url, browser, "dana", "dana-password", storage)
        async with sdk_session(transport, url, auth) as client:
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
            result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})

    assert tools == ["countdown", "current_time_by_timezone"]
    assert result.content[0].text.endswith("+00:00")
    assert storage.client_info.client_name == "SDK test client"
    assert storage.tokens.refresh_token and storage.tokens.expires_in <= 3600
    assert "mcp:server:currenttime:execute" in storage.tokens.scope.split()
    # the person logged in at the IdP, through the gateway's own client there
    assert "login dana" in idp_gateway.idp.log_text()


async def test_metadata_chain_names_one_issuer_and_the_exact_resource(idp_gateway):
    async with httpx.AsyncClient(base_url=idp_gateway.url, timeout=10) as http:
        refused = await http.post("/api/streamable/currenttime", json=INITIALIZE, headers=ACCEPT)
        metadata_url = refused.headers["www-authenticate"].split('resource_metadata="')[1].rstrip('"')
        resource = (await http.get(metadata_url)).json()
        server = (await http.get("/.well-known/oauth-authorization-server")).json()
        unknown = await http.get("/.well-known/oauth-protected-resource/api/streamable/nope")
        posted = await http.post(metadata_url)

    assert refused.status_code == 401
    assert metadata_url == f"{idp_gateway.url}/.well-known/oauth-protected-resource/api/streamable/currenttime"
    assert resource["resource"] == idp_gateway.streamable_url("currenttime")
    assert resource["authorization_servers"] == [idp_gateway.url] == [server["issuer"]]
    assert resource["bearer_methods_supported"] == ["header"]
    assert resource["scopes_supported"] == ["mcp:server:currenttime:read", "mcp:server:currenttime:execute"]
    # an unknown name has metadata too (only its name differs): names are not told apart before sign-in
    assert unknown.status_code == 200 and unknown.json()["resource"] == idp_gateway.streamable_url("nope")
    assert posted.status_code == 405


async def test_a_user_lacking_the_scope_gets_403_with_the_scope_hint(idp_gateway):
    async with httpx.AsyncClient(base_url=idp_gateway.url, timeout=15) as http:
        facade = Facade(http)
        client = await facade.register()
        grant = await facade.authorize(client, idp_gateway.streamable_url("currenttime"), "bob", "bob-password")
        token = (await facade.redeem(client, grant)).json()["access_token"]

        refused = await http.post("/api/streamable/currenttime", json=INITIALIZE,
                                  headers={**ACCEPT, "authorization": f"Bearer {token}"})

    assert refused.status_code == 403
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
    assert 'scope="mcp:server:currenttime:read"' in challenge
    assert "mcp:server:currenttime:read" in refused.text


async def test_a_client_credentials_token_works_for_an_agent(idp_gateway):
    agent = idp_gateway.idp.client("agent-currenttime")
    issued = httpx.post(idp_gateway.idp.token_url, auth=agent.basic_auth, timeout=10,
                        data={"grant_type": "client_credentials", "resource": AGENT_AUDIENCE})
    assert issued.status_code == 200, issued.text
    headers = {"authorization": f"Bearer {issued.json()['access_token']}"}

    async with streamable_session(idp_gateway.streamable_url("currenttime"), headers) as client:
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})

    assert result.content[0].text.endswith("+00:00")


async def test_an_idp_token_for_another_audience_is_refused(idp_gateway):
    agent = idp_gateway.idp.client("agent")  # the fixture's default agent: its tokens name another audience
    token = httpx.post(idp_gateway.idp.token_url, data={"grant_type": "client_credentials"}, auth=agent.basic_auth,
                       timeout=10).json()["access_token"]

    refused = httpx.post(idp_gateway.streamable_url("currenttime"), json=INITIALIZE,
                         headers={**ACCEPT, "authorization": f"Bearer {token}"}, timeout=10)

    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "audience not accepted" in refused.json()["message"]


@pytest.mark.parametrize("server,header,value", [("recorder", "authorization", UPSTREAM_SECRET),
                                                 ("recorder-env", "x-api-key", "key-from-env")])
async def test_upstreams_get_their_own_credentials_never_the_callers_token(idp_gateway, recorder, server, header,
                                                                           value):
    async with httpx.AsyncClient(base_url=idp_gateway.url, timeout=15) as http:
        facade = Facade(http)
        client = await facade.register()
        grant = await facade.authorize(client, idp_gateway.streamable_url(server), "alice", "alice-password")
        token = (await facade.redeem(client, grant)).json()["access_token"]
        before = len(recorder.requests)

        answer = await http.post(f"/api/streamable/{server}", json=INITIALIZE,
                                 headers={**ACCEPT, "authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text
    [seen] = recorder.requests[before:]
    assert seen.headers[header] == value
    assert token not in str(seen.headers) and "mcp_gateway_session" not in str(seen.headers)
    if header != "authorization":
        assert "authorization" not in seen.headers
