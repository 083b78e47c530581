"""Attacks on the authorization-server facade and on the bearer tokens it issues, against the
real gateway (local accounts): each must be refused, clearly, and leave nothing usable behind."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlencode

import httpx
import pytest

from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.sessions import open_store
# The real gateway of the end-to-end tests (local accounts), and the upstreams behind it.
from tests.e2e.conftest import (  # noqa: F401
    ACCOUNTS,
    ADMIN_PASSWORD,
    auth_gateway,
    recorder,
    upstream_json_answers,
    upstream_sse_answers,
)
from tests.support.facade import REDIRECT_URI, Facade, pkce_pair
from tests.support.headless import parse_forms

pytestmark = pytest.mark.timeout(60)

ACCEPT = {"accept": "application/json, text/event-stream"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture
async def browser(auth_gateway):
    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=15) as http:
        yield http


@pytest.fixture
def facade(browser) -> Facade:
    return Facade(browser)


@pytest.fixture
def resource(auth_gateway) -> str:
    return auth_gateway.streamable_url("currenttime")


async def signed_in(browser: httpx.AsyncClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    response = await browser.post("/oauth/login/local", data={"username": username, "password": password,
                                                              "next": "/oauth/me"})
    assert response.status_code == 303


async def call(gw, token: str, path: str = "/api/streamable/currenttime", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        return await http.post(path, json=INITIALIZE, headers={**ACCEPT, "authorization": f"Bearer {token}", **headers})


async def tokens_for(facade: Facade, resource: str) -> tuple[dict, dict]:
    client = await facade.register()
    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD)
    response = await facade.redeem(client, grant)
    assert response.status_code == 200, response.text
    return client, response.json()


# -- codes -------------------------------------------------------------------------------------


async def test_a_replayed_code_is_refused_and_revokes_what_it_gave(auth_gateway, facade, resource):
    client = await facade.register()
    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD)
    first = (await facade.redeem(client, grant)).json()
    assert (await call(auth_gateway, first["access_token"])).status_code == 200

    replayed = await facade.redeem(client, grant)

    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert "already used" in replayed.json()["error_description"]
    assert (await call(auth_gateway, first["access_token"])).status_code == 401
    assert (await facade.refresh(client, first["refresh_token"])).json()["error"] == "invalid_grant"


async def test_a_wrong_verifier_is_refused_and_spends_the_code(facade, resource):
    client = await facade.register()
    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD)

    wrong = await facade.redeem(client, grant, code_verifier=pkce_pair()[0])
    right_too_late = await facade.redeem(client, grant)

    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "PKCE" in wrong.json()["error_description"]
    assert right_too_late.json()["error"] == "invalid_grant"


async def test_a_code_is_only_for_the_client_it_was_issued_to(facade, resource):
    victim, thief = await facade.register(), await facade.register()
    grant = await facade.authorize(victim, resource, "admin", ADMIN_PASSWORD)

    stolen = await facade.redeem(thief, grant, client_id=thief["client_id"])

    assert stolen.status_code == 400 and "another client" in stolen.json()["error_description"]


async def test_a_code_needs_the_redirect_uri_it_was_sent_to(facade, resource):
    client = await facade.register(redirect_uris=[REDIRECT_URI, "http://127.0.0.1:9/other"])
    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD)

    refused = await facade.redeem(client, grant, redirect_uri="http://127.0.0.1:9/other")

    assert refused.status_code == 400 and "redirect_uri" in refused.json()["error_description"]


# -- redirect URIs -----------------------------------------------------------------------------

UNREGISTERED = [
    "http://127.0.0.1:9/callback/../evil", "http://127.0.0.1:9/Callback", "http://127.0.0.1:9/callback/",
    "http://127.0.0.1:9/callback?x=1", "https://127.0.0.1:9/callback", "http://localhost:9/callback",
    "http://127.0.0.1:9@evil.example/callback", "http://127.0.0.1.evil.example:9/callback",
    "http://evil.example/callback", "http://127.0.0.1:9/callback#frag", "http://127.0.0.1:9/callback%2F..",
    "javascript:alert(1)//http://127.0.0.1:9/callback",
]


@pytest.mark.parametrize("redirect_uri", UNREGISTERED)
async def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(facade, browser, resource, redirect_uri):
    await signed_in(browser)
    client = await facade.register()

    response = await browser.get(facade.authorize_url(client, resource, pkce_pair()[1], redirect_uri=redirect_uri))

    assert response.status_code == 400 and "location" not in response.headers
    assert "redirect URI" in response.text and "not one the application registered" in response.text


async def test_a_loopback_redirect_uri_may_use_another_port(facade, resource):
    client = await facade.register()

    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD,
                                   redirect_uri="http://127.0.0.1:55123/callback")

    assert grant.callback.port == 55123 and grant.code
    assert (await facade.redeem(client, grant)).status_code == 200


REFUSED_AT_REGISTRATION = [
    "http://evil.example/callback", "http://localhost.evil.example/cb", "http://127.0.0.1@evil.example/cb",
    "http://10.0.0.1/cb", "javascript:alert(1)", "data:text/html,hi", "com.example.app:/callback", "ftp://x/cb",
    "https://app.example/cb#fragment", "https://user:pw@app.example/cb", "https://app.example/c b", "/relative",
    "https:///nohost", "https://app.example:99999/cb", "https://app.example/\u00e9",
]


@pytest.mark.parametrize("redirect_uri", REFUSED_AT_REGISTRATION)
async def test_registration_refuses_redirect_uris_that_are_neither_https_nor_loopback_http(browser, redirect_uri):
    response = await browser.post("/oauth/register", json={"redirect_uris": [redirect_uri], "client_name": "x"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize("metadata", [
    {"redirect_uris": [REDIRECT_URI], "grant_types": ["client_credentials"]},
    {"redirect_uris": [REDIRECT_URI], "grant_types": ["authorization_code", "implicit"]},
    {"redirect_uris": [REDIRECT_URI], "response_types": ["token"]},
    {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"},
    {"redirect_uris": [REDIRECT_URI], "client_name": "x" * 101},
    {"redirect_uris": [REDIRECT_URI], "client_name": "line\nbreak"},
    {"redirect_uris": []},
    {"redirect_uris": REDIRECT_URI},
])
async def test_registration_refuses_metadata_it_cannot_honour(browser, metadata):
    response = await browser.post("/oauth/register", json=metadata)

    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")


# JSON another parser would read otherwise (mcp_gateway/strict_json.py): each was registered before.
AMBIGUOUS_REGISTRATIONS = [
    b'{"redirect_uris": ["%s"], "client_name": NaN}',
    b'{"redirect_uris": ["%s"], "client_name": "a", "client_name": "b"}',
    b'{"redirect_uris": ["%s"], "Redirect_URIs": ["https://evil.example/cb"]}',
    b'{"redirect_uris": ["%s"], "client_name": "\\udc00"}',
    b'\xef\xbb\xbf{"redirect_uris": ["%s"]}',
    b'{"redirect_uris": ["%s"]} trailing',
    b'{"redirect_uris": ["%s"], "x": 1e400}',
    '{"redirect_uris": ["%s"]}'.encode("utf-16"),
]


@pytest.mark.parametrize("template", AMBIGUOUS_REGISTRATIONS, ids=["nan", "duplicate-key", "case-folded-key",
                                                               "lone-surrogate", "bom", "trailing-data",
                                                               "overflow", "utf-16"])
async def test_registration_refuses_json_another_parser_would_read_otherwise(browser, template):
    body = template.replace(b"%s", REDIRECT_URI.encode()) if b"%s" in template else \
        template.decode("utf-16").replace("%s", REDIRECT_URI).encode("utf-16")
    response = await browser.post("/oauth/register", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


# -- consent -----------------------------------------------------------------------------------


async def test_a_denied_consent_sends_access_denied_and_no_code(facade, resource):
    client = await facade.register()

    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD, consent="deny")

    assert grant.callback.params["error"] == "access_denied"
    assert grant.callback.params["state"] == grant.state
    assert "code" not in grant.callback.params


async def test_consent_cannot_be_posted_cross_site_or_without_the_sessions_csrf_token(facade, browser, resource):
    await signed_in(browser)
    client = await facade.register()
    page = await browser.get(facade.authorize_url(client, resource, pkce_pair()[1]))
    transaction = page.text.split('name="transaction" value="')[1].split('"')[0]

    cross_site = await browser.post("/oauth/authorize", data={"transaction": transaction, "decision": "allow"},
                                    headers={"origin": "https://evil.example"})
    no_csrf = await browser.post("/oauth/authorize", data={"transaction": transaction, "decision": "allow"})

    assert cross_site.status_code == 403 and no_csrf.status_code == 403
    assert "location" not in cross_site.headers and "location" not in no_csrf.headers


# Ways to press an Allow the page did not offer: each must end as access_denied, never a code.
ALLOW_ANYWAY = [
    [("decision", "allow")],
    [("decision", "allow"), ("decision", "allow")],
    [("decision", "allow"), ("decision", "deny")],
    [("decision", "allow"), ("resource", "http://127.0.0.1/api/streamable/currenttime")],
]


@pytest.mark.parametrize("allow", ALLOW_ANYWAY)
async def test_a_person_without_access_is_told_so_offered_no_allow_and_refused_if_allowing_anyway(
        facade, browser, resource, allow):
    await signed_in(browser, "bob", ACCOUNTS["bob"][0])  # mcp-user: registry read, no server access
    client = await facade.register()
    page = await browser.get(facade.authorize_url(client, resource, pkce_pair()[1], state="bob-state"))

    assert page.status_code == 200
    assert 'value="allow"' not in page.text and ">Allow<" not in page.text
    assert not any(form.submitter("allow") for form in parse_forms(page.text))
    assert "no access" in page.text and "mcp-server-currenttime" in page.text
    hidden = {name: value for form in parse_forms(page.text) for name, value in form.fields}
    form = urlencode([("transaction", hidden["transaction"]), ("csrf_token", hidden["csrf_token"]), *allow])
    answer = await browser.post("/oauth/authorize", content=form, headers={
        "origin": str(browser.base_url).rstrip("/"), "content-type": "application/x-www-form-urlencoded"})

    location = httpx.URL(answer.headers["location"])
    assert str(location).startswith(REDIRECT_URI) and "code" not in location.params
    assert location.params["error"] == "access_denied" and location.params["state"] == "bob-state"
    if allow[0][1] == "allow" and ("decision", "deny") not in allow:
        assert "mcp-server-currenttime" in location.params["error_description"]


async def test_a_person_without_access_returns_to_the_client_with_access_denied(facade, resource):
    client = await facade.register()

    grant = await facade.authorize(client, resource, "bob", ACCOUNTS["bob"][0], consent="deny")

    assert grant.callback.params["error"] == "access_denied" and grant.callback.params["state"] == grant.state
    assert "code" not in grant.callback.params


async def test_a_tool_only_token_lists_exactly_that_scope_and_refresh_computes_it_again(facade, resource):
    client = await facade.register()
    grant = await facade.authorize(client, resource, "tina", ACCOUNTS["tina"][0])
    issued = (await facade.redeem(client, grant)).json()
    refreshed = (await facade.refresh(client, issued["refresh_token"])).json()

    expected = "mcp:server:currenttime:tool:current_time_by_timezone:execute"
    assert issued["scope"] == expected and refreshed["scope"] == expected


@pytest.mark.parametrize("change,error", [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"resource": None}, "invalid_target"),
    ({"resource": "http://127.0.0.1:1/api/streamable/currenttime"}, "invalid_target"),
    ({"resource": "RESOURCE/../recorder"}, "invalid_target"),
    ({"resource": "GATEWAY/api/streamable/unknown"}, "invalid_target"),
])
async def test_malformed_authorization_requests_go_back_to_the_client_as_errors(auth_gateway, facade, browser,
                                                                                resource, change, error):
    await signed_in(browser)
    client = await facade.register()
    changed = {name: value and value.replace("RESOURCE", resource).replace("GATEWAY", auth_gateway.url)
               for name, value in change.items()}
    target = changed.pop("resource", resource)
    url = facade.authorize_url(client, target, pkce_pair()[1], **changed)

    response = await browser.get(url)

    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(REDIRECT_URI)
    assert location.params["error"] == error and location.params["state"] == "st"
    assert location.params["iss"] == auth_gateway.url and "code" not in location.params


# -- refresh tokens ----------------------------------------------------------------------------


async def test_a_refresh_token_replayed_after_rotation_revokes_the_grant(auth_gateway, facade, resource):
    client, first = await tokens_for(facade, resource)
    second = (await facade.refresh(client, first["refresh_token"])).json()
    assert (await call(auth_gateway, second["access_token"])).status_code == 200

    replayed = await facade.refresh(client, first["refresh_token"])

    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert (await call(auth_gateway, second["access_token"])).status_code == 401
    assert (await call(auth_gateway, first["access_token"])).status_code == 401
    assert (await facade.refresh(client, second["refresh_token"])).json()["error"] == "invalid_grant"


async def test_a_refresh_token_is_only_for_its_client(facade, resource):
    client, tokens = await tokens_for(facade, resource)
    thief = await facade.register()

    stolen = await facade.refresh(thief, tokens["refresh_token"])

    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await facade.refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"


# -- access tokens at the proxy ----------------------------------------------------------------


async def test_a_token_for_one_servers_resource_is_refused_at_another(auth_gateway, facade, resource):
    _, tokens = await tokens_for(facade, resource)

    for path in ("/api/streamable/currenttime-json", "/api/execute/currenttime/messages/?session_id=x",
                 "/api/servers"):
        refused = await call(auth_gateway, tokens["access_token"], path)
        assert refused.status_code == 401, path
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert "issued for" in refused.json()["message"]
    assert (await call(auth_gateway, tokens["access_token"])).status_code == 200


async def test_an_expired_access_token_is_refused(auth_gateway, resource):
    store = open_store("sqlite:///sessions.db", base_dir=auth_gateway.state_dir, lifetime=60, idle_timeout=60,
                       secretbox=None)
    try:
        # an access session's `scopes` are what the token was granted
        token, _ = await store.create(subject="admin", username="admin", provider="local", groups=["mcp-admin"],
                                      scopes=["mcp:registry:admin"], kind="access", client_id="c" * 32,
                                      resources=[resource], lifetime=3)
        assert (await call(auth_gateway, token)).status_code == 200
        await asyncio.sleep(3.2)

        refused = await call(auth_gateway, token)
    finally:
        await store.close()

    assert refused.status_code == 401 and "expired" in refused.json()["message"]


async def test_a_token_in_the_query_string_is_refused(auth_gateway, facade, resource):
    _, tokens = await tokens_for(facade, resource)

    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=10) as http:
        for name in ("access_token", "token"):
            refused = await http.post(f"/api/streamable/currenttime?{name}={quote(tokens['access_token'])}",
                                      json=INITIALIZE, headers=ACCEPT)
            assert refused.status_code == 401 and "query string" in refused.json()["message"]


async def test_a_browser_session_is_not_a_bearer_token(auth_gateway, browser):
    await signed_in(browser)

    refused = await call(auth_gateway, browser.cookies[SESSION_COOKIE])

    assert refused.status_code == 401 and "browser session" in refused.json()["message"]


async def test_with_a_cookie_and_a_bearer_token_the_bearer_token_decides(auth_gateway, browser):
    await signed_in(browser)
    cookie = {"cookie": f"{SESSION_COOKIE}={browser.cookies[SESSION_COOKIE]}"}

    refused = await call(auth_gateway, "not-a-token-of-this-gateway", **cookie)

    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_two_authorization_headers_are_refused(auth_gateway, facade, resource):
    _, tokens = await tokens_for(facade, resource)
    headers = [("authorization", f"Bearer {tokens['access_token']}"), ("authorization", "Bearer other")]

    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=10) as http:
        refused = await http.post("/api/streamable/currenttime", json=INITIALIZE, headers=[*ACCEPT.items(), *headers])

    assert refused.status_code == 401 and "more than one Authorization" in refused.json()["message"]


@pytest.mark.parametrize("header", ["Basic YWRtaW46eA==", "Bearer", "Bearer a b", "bearer-token", "Token abc"])
async def test_anything_but_one_bearer_token_is_refused(auth_gateway, header):
    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=10) as http:
        refused = await http.post("/api/streamable/currenttime", json=INITIALIZE,
                                  headers={**ACCEPT, "authorization": header})

    assert refused.status_code == 401
    assert 'error="invalid_request"' in refused.headers["www-authenticate"]


async def test_a_revoked_access_token_is_refused(auth_gateway, facade, resource):
    client, tokens = await tokens_for(facade, resource)

    revoked = await facade.http.post("/oauth/revoke", data={"token": tokens["access_token"],
                                                             "client_id": client["client_id"]})

    assert revoked.status_code == 200
    assert (await call(auth_gateway, tokens["access_token"])).status_code == 401


# -- logout ends the grants of its browser session ------------------------------------------------


async def test_logout_ends_the_grants_made_in_that_browser_session_and_no_other(auth_gateway, facade, resource):
    client, first = await tokens_for(facade, resource)          # consent in this browser session
    refreshed = (await facade.refresh(client, first["refresh_token"])).json()  # its successor tokens
    pending = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD)  # a code not yet redeemed
    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=15) as other_browser:
        other_facade = Facade(other_browser)
        other_client, other = await tokens_for(other_facade, resource)  # same person, another browser session

        out = await facade.http.post("/oauth/logout", headers={"origin": auth_gateway.url})
        assert out.status_code == 200

        for token in (first["access_token"], refreshed["access_token"]):
            assert (await call(auth_gateway, token)).status_code == 401
        for token in (first["refresh_token"], refreshed["refresh_token"]):
            assert (await facade.refresh(client, token)).json()["error"] == "invalid_grant"
        late = await facade.redeem(client, pending)
        assert late.status_code == 400 and late.json()["error"] == "invalid_grant"

        assert (await call(auth_gateway, other["access_token"])).status_code == 200
        assert (await other_facade.refresh(other_client, other["refresh_token"])).status_code == 200
