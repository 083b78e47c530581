"""Driving the gateway's authorization-server facade as an MCP client and a person would.

    facade = Facade(http)                      # http: an httpx.AsyncClient on the gateway (or login app)
    client = await facade.register()           # RFC 7591, redirect URI http://127.0.0.1:9/callback
    grant = await facade.authorize(client, resource, "admin", ADMIN_PASSWORD)   # login + consent
    tokens = (await facade.redeem(client, grant)).json()

`http` keeps the cookies: it is the person's browser. The redirect URI is never requested:
the walk stops at it (tests.support.headless).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from .headless import headless_authorize

REDIRECT_URI = "http://127.0.0.1:9/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@dataclass(frozen=True)
class Authorized:
    """Where the consent sent the browser back, and the verifier the code needs."""

    callback: httpx.URL
    verifier: str
    redirect_uri: str
    state: str

    @property
    def code(self) -> str:
        return self.callback.params["code"]


class Facade:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def register(self, **metadata: object) -> dict:
        body = {"client_name": "Test MCP client", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"], **metadata}
        response = await self.http.post("/oauth/register", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def authorize_url(self, client: dict, resource: str | None, challenge: str, *, state: str = "st",
                      redirect_uri: str | None = REDIRECT_URI, **extra: str) -> str:
        """`redirect_uri=None`: the request leaves it out (the client's only registered one is used)."""
        params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": redirect_uri,
                  "state": state, "code_challenge": challenge, "code_challenge_method": "S256", **extra}
        if redirect_uri is None:
            del params["redirect_uri"]
        if resource is not None:
            params["resource"] = resource
        return f"{self.http.base_url.join('/oauth/authorize')}?{urlencode(params)}"

    async def authorize(self, client: dict, resource: str, username: str, password: str, *, consent: str = "allow",
                        redirect_uri: str | None = REDIRECT_URI) -> Authorized:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(8)
        url = self.authorize_url(client, resource, challenge, state=state, redirect_uri=redirect_uri)
        sent_to = redirect_uri or client["redirect_uris"][0]
        callback = await headless_authorize(self.http, url, username, password, stop_at_prefix=sent_to.split("?")[0],
                                            consent_action=consent)
        return Authorized(callback, verifier, sent_to, state)

    async def token(self, form: dict, **kwargs) -> httpx.Response:
        return await self.http.post("/oauth/token", data=form, **kwargs)

    async def redeem(self, client: dict, grant: Authorized, **overrides: str) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": grant.code, "redirect_uri": grant.redirect_uri,
                "client_id": client["client_id"], "code_verifier": grant.verifier, **overrides}
        return await self.token(form)

    async def refresh(self, client: dict, refresh_token: str) -> httpx.Response:
        return await self.token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                                 "client_id": client["client_id"]})
