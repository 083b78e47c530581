"""An OpenID Connect login (authorization code + PKCE) through the real gateway — mitmdump
with addons/gateway.py and its login app — against a real provider (panva's oidc-provider),
walked without a browser. The generic provider is configured with the MCP_AUTH_* variables
only, the IdP found by discovery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mcp_gateway.config import GatewayConfig, load_config
from mcp_gateway.group_refresh import refresh_if_due
from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.providers import Provider, RefreshRefused, build_providers
from mcp_gateway.services import session_store_for
from mcp_gateway.sessions import SessionStore
from tests.e2e.conftest import wait_for_login_app
from tests.support.gateway import TEST_SECRET_KEY, Gateway, run_gateway
from tests.support.headless import headless_authorize
from tests.support.login import cookie_header
from tests.support.oidc_provider import DEFAULT_USERS, OidcProvider, running_oidc_provider
from tests.support.processes import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

ADMIN_PASSWORD = "local-admin-password-for-oauth-tests"


@dataclass
class Setup:
    idp: OidcProvider
    gateway: Gateway
    env: dict[str, str]

    def config(self) -> GatewayConfig:
        return load_config(self.gateway.config_path, env={"SECRET_KEY": TEST_SECRET_KEY, **self.env})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with running_oidc_provider(tmp_path_factory.mktemp("oidc-provider")) as idp:
        port = free_port()  # the client's redirect URI must name the gateway's port
        client = idp.add_client("mcp-gateway", redirect_uris=[f"http://127.0.0.1:{port}/oauth/callback"])
        env = {"MCP_AUTH_ENABLED": "true", "MCP_AUTH_PROVIDER_TYPE": "generic", "MCP_AUTH_ISSUER": idp.issuer,
               "MCP_AUTH_CLIENT_ID": client.client_id, "MCP_AUTH_CLIENT_SECRET": client.client_secret,
               "MCP_AUTH_SCOPES": "openid email profile", "ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}
        with run_gateway(tmp_path_factory.mktemp("gw-oidc"), [], auth={}, env=env, port=port,
                         session={"refresh_interval": "2s"}) as gateway:
            wait_for_login_app(gateway)
            yield Setup(idp, gateway, env)


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15, trust_env=False) as client:
        yield client


@pytest.fixture
async def gateway_side(setup: Setup) -> AsyncIterator[tuple[SessionStore, Provider]]:
    """The store and provider as the gateway's proxy would use them, on the same state dir."""
    config = setup.config()
    providers = await build_providers(config)
    async with session_store_for(config) as store:
        yield store, providers["generic"]
    await providers["generic"].aclose()


async def log_in(setup: Setup, browser: httpx.AsyncClient, user: str, password: str | None = None) -> str:
    """The whole login from the gateway's URL; returns the session cookie's value."""
    gw = setup.gateway.url
    callback = await headless_authorize(browser, f"{gw}/oauth/login/generic?next=/oauth/me", user,
                                        password or DEFAULT_USERS[user]["password"],
                                        stop_at_prefix=f"{gw}/oauth/callback")
    assert callback.path == "/oauth/callback" and callback.params["iss"] == setup.idp.issuer
    response = await browser.get(callback)
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == "/oauth/me"
    token = response.cookies.get(SESSION_COOKIE)
    assert token
    return token


async def me(setup: Setup, token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(f"{setup.gateway.url}/oauth/me", headers=cookie_header(token))


async def test_the_login_page_offers_the_provider_and_local_accounts(setup: Setup,
                                                                     browser: httpx.AsyncClient) -> None:
    page = await browser.get(f"{setup.gateway.url}/oauth/login", params={"next": "/oauth/me"})
    assert page.status_code == 200
    assert 'href="/oauth/login/generic?next=/oauth/me"' in page.text and "Sign in with 127.0.0.1" in page.text
    assert 'name="password"' in page.text  # the local account form


@pytest.mark.parametrize(("user", "groups", "scopes"), [
    ("alice", ["mcp-admin"], ["mcp:registry:admin"]),
    ("bob", ["mcp-user"], ["mcp:registry:read"]),
    ("carol", [], []),
])
async def test_people_in_different_groups_end_with_their_scopes(user: str, groups: list[str], scopes: list[str],
                                                               setup: Setup, browser: httpx.AsyncClient) -> None:
    token = await log_in(setup, browser, user)
    answer = await me(setup, token)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["user"], body["email"], body["provider"]) == (user, f"{user}@example.test", "generic")
    assert (body["groups"], body["scopes"]) == (groups, scopes)
    assert f"auth: login user={user} provider=generic groups={','.join(groups)}" in setup.gateway.log


async def test_a_group_change_at_the_idp_is_picked_up_by_the_refresh(
        setup: Setup, browser: httpx.AsyncClient, gateway_side: tuple[SessionStore, Provider]) -> None:
    store, provider = gateway_side
    setup.idp.add_user("dave", "dave-password", groups=["mcp-user"])
    token = await log_in(setup, browser, "dave", "dave-password")
    assert (await me(setup, token)).json()["scopes"] == ["mcp:registry:read"]

    setup.idp.set_groups("dave", ["mcp-admin"])
    session = await store.get(token)
    assert session is not None and session.refresh_token
    assert session.refresh_token.encode() not in stored_bytes(setup)  # sealed at rest
    refreshed = await refresh_if_due(store, session, provider, interval=0)
    assert refreshed is not None and refreshed.groups == ("mcp-admin",)
    assert (await me(setup, token)).json()["scopes"] == ["mcp:registry:admin"]  # the login app sees it too

    setup.idp.remove_user("dave")  # gone at the IdP: the refresh token is refused
    assert await refresh_if_due(store, refreshed, provider, interval=0) is None
    assert (await me(setup, token)).status_code == 401


def _listed(api: str, headers: dict[str, str]) -> int:
    """A harmless request through the proxy: each one past refresh_interval makes it ask the IdP."""
    return httpx.get(api, headers=headers, timeout=20, trust_env=False).status_code


async def test_the_proxy_refreshes_groups_on_requests_and_ends_refused_sessions(
        setup: Setup, browser: httpx.AsyncClient) -> None:
    setup.idp.add_user("erin", "erin-password", groups=["mcp-admin"])
    headers = cookie_header(await log_in(setup, browser, "erin", "erin-password"))
    api = f"{setup.gateway.url}/api/servers"
    entry = {"name": "erin-made", "url": "http://127.0.0.1:9"}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        assert (await client.post(api, json=entry, headers=headers)).status_code == 201
        setup.idp.set_groups("erin", ["mcp-user"])
        wait_until(lambda: _listed(api, headers) == 200 and "groups changed user=erin" in setup.gateway.log, 10,
                   "the proxy refreshes erin's groups after refresh_interval (2 s)")
        demoted = await client.delete(f"{api}/erin-made", headers=headers)
        assert demoted.status_code == 403, "a group removed at the IdP still counted after refresh_interval"
        setup.idp.remove_user("erin")
        wait_until(lambda: _listed(api, headers) == 401, 10, "a session whose refresh the IdP refused ends")


async def test_logout_revokes_the_refresh_token_at_the_idp(
        setup: Setup, browser: httpx.AsyncClient, gateway_side: tuple[SessionStore, Provider]) -> None:
    store, provider = gateway_side
    token = await log_in(setup, browser, "bob")
    session = await store.get(token)
    assert session is not None and session.refresh_token
    await provider.refresh(session.refresh_token)  # valid before the logout

    logout = await browser.post(f"{setup.gateway.url}/oauth/logout", headers={"origin": setup.gateway.url})
    assert logout.status_code == 200
    assert (await me(setup, token)).status_code == 401
    with pytest.raises(RefreshRefused):
        await provider.refresh(session.refresh_token)


async def test_the_login_apps_log_holds_no_code_or_token(setup: Setup, browser: httpx.AsyncClient) -> None:
    token = await log_in(setup, browser, "carol")
    log = "\n".join(line for line in setup.gateway.log.splitlines() if line.startswith("[login-app]"))
    assert "auth: login user=carol provider=generic" in log
    for secret in (token, setup.idp.client("mcp-gateway").client_secret, "code=", "state=", "refresh_token="):
        assert secret not in log


async def test_zz_an_idp_down_during_a_refresh_keeps_the_session_and_its_groups(
        setup: Setup, browser: httpx.AsyncClient) -> None:
    """Last in this module: it stops the IdP. A refresh that cannot reach the IdP is not a refusal."""
    setup.idp.add_user("gina", "gina-password", groups=["mcp-admin"])
    token = await log_in(setup, browser, "gina", "gina-password")
    headers = cookie_header(token)
    api = f"{setup.gateway.url}/api/servers"
    setup.idp.stop()
    failed = "group refresh for user=gina provider=generic failed, groups kept"
    wait_until(lambda: _listed(api, headers) == 200 and failed in setup.gateway.log, 20,
               "a request past refresh_interval (2 s) tries the stopped IdP and keeps the session")
    async with httpx.AsyncClient(timeout=20, trust_env=False) as client:
        created = await client.post(api, json={"name": "gina-made", "url": "http://127.0.0.1:9"}, headers=headers)
    assert created.status_code == 201, "an IdP outage must not end sessions or drop their groups"
    # and nothing in the whole gateway log (proxy and login app) carries a code or a token
    for secret in (token, "code=", "refresh_token="):
        assert secret not in setup.gateway.log


def stored_bytes(setup: Setup) -> bytes:
    """Every byte of the SQLite session store (database and write-ahead log)."""
    return b"".join(path.read_bytes() for path in Path(setup.gateway.state_dir).glob("sessions.db*"))
