"""The authorization-server facade in the login app, in process: metadata, registration,
authorize (login, consent), token, refresh with rotation, revocation."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from login_app.app import create_app
from mcp_gateway.config import load_config
from tests.support.facade import REDIRECT_URI, Facade
from tests.support.gateway import TEST_SECRET_KEY, server_entry, write_config
from tests.support.headless import parse_forms

pytestmark = pytest.mark.timeout(30)

PASSWORD = "admin-password-for-facade-tests"
PORT = 7999  # only names the public URL: nothing listens in these tests


@pytest.fixture
async def app(tmp_path: Path):
    servers = [server_entry("currenttime", "http://127.0.0.1:1"), server_entry("other", "http://127.0.0.1:1")]
    path = write_config(tmp_path, PORT, servers, auth={"enabled": True, "provider_type": "local"})
    config = load_config(path, env={"SECRET_KEY": TEST_SECRET_KEY, "ADMIN_USER": "admin", "ADMIN_PASSWORD": PASSWORD})
    application = create_app(config)
    yield application
    await application.state.login.store.close()


@pytest.fixture
async def http(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{PORT}") as client:
        yield client


@pytest.fixture
def facade(http) -> Facade:
    return Facade(http)


RESOURCE = f"http://127.0.0.1:{PORT}/api/streamable/currenttime"


async def test_metadata_names_the_public_url_as_issuer_and_every_endpoint(http):
    response = await http.get("/.well-known/oauth-authorization-server")

    metadata = response.json()
    issuer = f"http://127.0.0.1:{PORT}"
    assert metadata["issuer"] == issuer
    assert metadata["authorization_endpoint"] == f"{issuer}/oauth/authorize"
    assert metadata["token_endpoint"] == f"{issuer}/oauth/token"
    assert metadata["registration_endpoint"] == f"{issuer}/oauth/register"
    assert metadata["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True


async def test_nobody_signed_in_goes_to_the_login_page_and_comes_back(facade, http):
    client = await facade.register()
    url = facade.authorize_url(client, RESOURCE, "x" * 43)

    response = await http.get(url)

    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.path == "/oauth/login"
    assert location.params["next"] == url.removeprefix(f"http://127.0.0.1:{PORT}")


async def test_consent_page_shows_the_client_and_where_the_code_goes(facade, http):
    client = await facade.register(client_name="Evil <b>Client</b>", redirect_uris=["https://app.example/cb"])
    await http.post("/oauth/login/local", data={"username": "admin", "password": PASSWORD, "next": "/oauth/me"})

    page = await http.get(facade.authorize_url(client, RESOURCE, "x" * 43, redirect_uri="https://app.example/cb"))

    assert page.status_code == 200
    assert "Evil &lt;b&gt;Client&lt;/b&gt;" in page.text and "<b>Client" not in page.text
    assert "https://app.example/cb" in page.text and RESOURCE in page.text
    assert "form-action 'self' https://app.example" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    [form] = parse_forms(page.text)
    assert ("decision", "allow") in form.submitters and ("decision", "deny") in form.submitters


async def test_code_flow_then_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(facade, http, app):
    store = app.state.login.store
    client = await facade.register()

    grant = await facade.authorize(client, RESOURCE, "admin", PASSWORD)

    assert grant.callback.params["state"] == grant.state
    assert grant.callback.params["iss"] == f"http://127.0.0.1:{PORT}"
    tokens = (await facade.redeem(client, grant)).json()
    assert tokens["token_type"] == "Bearer" and 3000 < tokens["expires_in"] <= 3600
    assert tokens["scope"] == "mcp:registry:admin"
    session = await store.get(tokens["access_token"])
    assert (session.kind, session.client_id, session.resources) == ("access", client["client_id"], (RESOURCE,))
    assert (session.username, session.groups) == ("admin", ("mcp-admin",))

    refreshed = await facade.refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != tokens["refresh_token"]
    assert await store.get(second["access_token"]) is not None

    reused = await facade.refresh(client, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert await store.get(second["access_token"]) is None, "reuse must revoke the whole grant"
    assert (await facade.refresh(client, second["refresh_token"])).json()["error"] == "invalid_grant"


def code_form(client: dict, grant, redirect_uri: str | None) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": grant.code, "client_id": client["client_id"],
            "code_verifier": grant.verifier}
    return form if redirect_uri is None else {**form, "redirect_uri": redirect_uri}


@pytest.mark.parametrize("at_token", [None, REDIRECT_URI + "x", "http://127.0.0.1:10/callback"])
async def test_a_redirect_uri_named_at_authorize_is_required_and_identical_at_token(facade, at_token):
    client = await facade.register()  # one registered redirect URI
    grant = await facade.authorize(client, RESOURCE, "admin", PASSWORD)

    refused = await facade.token(code_form(client, grant, at_token))

    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    assert "redirect_uri" in refused.json()["error_description"]


@pytest.mark.parametrize("at_token", [None, REDIRECT_URI])
async def test_a_redirect_uri_left_out_at_authorize_may_be_left_out_or_repeated_at_token(facade, at_token):
    client = await facade.register()
    grant = await facade.authorize(client, RESOURCE, "admin", PASSWORD, redirect_uri=None)
    assert str(grant.callback).startswith(REDIRECT_URI)

    redeemed = await facade.token(code_form(client, grant, at_token))

    assert redeemed.status_code == 200, redeemed.text


async def test_a_redirect_uri_left_out_at_authorize_cannot_differ_at_token(facade):
    client = await facade.register()
    grant = await facade.authorize(client, RESOURCE, "admin", PASSWORD, redirect_uri=None)

    refused = await facade.token(code_form(client, grant, REDIRECT_URI + "x"))

    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text


async def test_a_confidential_client_authenticates_with_its_secret(facade, http):
    client = await facade.register(token_endpoint_auth_method="client_secret_basic")
    assert client["client_secret"] and client["token_endpoint_auth_method"] == "client_secret_basic"
    grant = await facade.authorize(client, RESOURCE, "admin", PASSWORD)
    form = {"grant_type": "authorization_code", "code": grant.code, "redirect_uri": REDIRECT_URI,
            "code_verifier": grant.verifier}

    without = await facade.token(form | {"client_id": client["client_id"]})
    wrong = await facade.token(form, auth=(client["client_id"], "wrong"))
    right = await facade.token(form, auth=(client["client_id"], client["client_secret"]))

    assert without.status_code == 401 and without.json()["error"] == "invalid_client"
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    assert right.status_code == 200, "client authentication comes first: refused attempts do not spend the code"


async def test_revoking_a_refresh_token_ends_the_grant_and_other_clients_cannot_revoke(facade, app):
    store = app.state.login.store
    client, other = await facade.register(), await facade.register()
    tokens = (await facade.redeem(client, await facade.authorize(client, RESOURCE, "admin", PASSWORD))).json()

    by_other = await facade.http.post("/oauth/revoke", data={"token": tokens["refresh_token"],
                                                              "client_id": other["client_id"]})
    assert by_other.status_code == 400 and by_other.json()["error"] == "unauthorized_client"
    assert await store.get(tokens["access_token"]) is not None

    revoked = await facade.http.post("/oauth/revoke", data={"token": tokens["refresh_token"],
                                                             "client_id": client["client_id"]})
    assert revoked.status_code == 200
    assert await store.get(tokens["access_token"]) is None
    assert (await facade.refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    unknown = await facade.http.post("/oauth/revoke", data={"token": "never-issued-token-value",
                                                             "client_id": client["client_id"]})
    assert unknown.status_code == 200


async def test_the_resource_parameter_at_the_token_endpoint_may_only_narrow(facade):
    client = await facade.register()
    grant = await facade.authorize(client, RESOURCE, "admin", PASSWORD)

    other = await facade.redeem(client, grant, resource=f"http://127.0.0.1:{PORT}/api/streamable/other")

    assert other.status_code == 400 and other.json()["error"] == "invalid_target"


async def test_registrations_per_client_address_are_limited(facade, http, monkeypatch):
    import login_app.facade.registration as registration
    monkeypatch.setattr(registration, "MAX_REGISTRATIONS_PER_ADDRESS", 2)
    await facade.register()
    await facade.register()

    third = await http.post("/oauth/register", json={"redirect_uris": [REDIRECT_URI]})

    assert third.status_code == 429 and third.json()["error"] == "too_many_requests"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/login/local"])
@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=",
                                          "multipart/form-data; boundary=b; boundary=c"])
async def test_a_form_the_parser_cannot_read_is_a_json_invalid_request(http, path, content_type):
    answer = await http.post(path, content=b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n",
                             headers={"content-type": content_type, "origin": f"http://127.0.0.1:{PORT}"})

    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == "invalid_request"
