"""The registry pages' form posts, attacked: every state-changing action (toggle, edit, delete,
register, revoke) posted cross-site, with a forged or another session's CSRF token, without a
session, or by someone whose scopes do not allow it — refused with a JSON 4xx, and nothing
changes. Real gateway, real login app."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, ACCOUNTS
from tests.support.login import cookie_header, login_local

ACTIONS = [  # path, form
    ("/registry/servers/recorder/toggle", {"enabled": "false"}),
    ("/registry/servers/recorder/edit", {"description": "defaced"}),
    ("/registry/servers/recorder/delete", {}),
    ("/registry/servers", {"name": "planted", "url": "http://127.0.0.1:9"}),
]
CROSS_SITE = [  # extra headers, csrf token kind
    ({"origin": "https://evil.example"}, None),
    ({"origin": "null"}, None),
    ({}, None),                                            # no Origin, no token
    ({"origin": "https://evil.example"}, "forged"),
    ({"origin": "https://evil.example"}, "another session's"),
    ({"origin": "http://127.0.0.1"}, None),                # same host, other port: another origin
]


def _csrf(gw, token: str) -> str:
    page = httpx.get(f"{gw.url}/?format=json", headers=cookie_header(token), timeout=10)
    assert page.status_code == 200
    html = httpx.get(f"{gw.url}/", headers=cookie_header(token), timeout=10).text
    return html.split('name="csrf_token" value="')[1].split('"')[0]


def _state(gw, admin: str) -> dict:
    listing = httpx.get(f"{gw.url}/api/servers", headers=cookie_header(admin), timeout=10).json()["servers"]
    return {s["name"]: (s["enabled"], s["description"]) for s in listing}


@pytest.mark.parametrize("path, form", ACTIONS, ids=[a[0].rsplit("/", 1)[-1] for a in ACTIONS])
@pytest.mark.parametrize("headers, token_kind", CROSS_SITE, ids=["evil", "null", "none", "forged", "other", "port"])
def test_cross_site_posts_change_nothing(auth_gateway, path, form, headers, token_kind):
    admin = login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)
    before = _state(auth_gateway, admin)
    token = {"forged": "0" * 64,
             "another session's": _csrf(auth_gateway, login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)),
             None: None}[token_kind]
    body = {**form, **({"csrf_token": token} if token else {})}
    answer = httpx.post(auth_gateway.url + path, data=body, headers={**cookie_header(admin), **headers}, timeout=10)
    assert answer.status_code == 403 and answer.json()["status"] == 403
    assert _state(auth_gateway, admin) == before


@pytest.mark.parametrize("user, path, form, status", [
    ("bob", "/registry/servers/recorder/toggle", {}, 403),                    # registry read only
    ("otto", "/registry/servers/recorder/edit", {"description": "x"}, 403),   # toggle, not edit
    ("eddy", "/registry/servers/recorder/edit", {"url": "http://127.0.0.1:9"}, 403),  # edit, but url is admin's
    ("eddy", "/registry/servers/recorder/edit", {"upstream_header": "X-Api-Key"}, 403),  # credentials: never
    ("eddy", "/registry/servers/recorder/delete", {}, 403),
    ("otto", "/registry/servers", {"name": "planted", "url": "http://127.0.0.1:9"}, 403),
    ("admin", "/registry/clients/not-a-grant-of-mine/revoke", {}, 404),       # another person's grant id
    (None, "/registry/servers/recorder/toggle", {}, 401),
])
def test_posts_beyond_ones_scopes_change_nothing(auth_gateway, user, path, form, status):
    admin = login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)
    before = _state(auth_gateway, admin)
    headers = {"origin": auth_gateway.url}
    if user:
        password = ADMIN_PASSWORD if user == "admin" else ACCOUNTS[user][0]
        headers.update(cookie_header(login_local(auth_gateway.url, user, password)))
    answer = httpx.post(auth_gateway.url + path, data=form, headers=headers, timeout=10)
    assert answer.status_code == status and answer.json()["status"] == status
    assert _state(auth_gateway, admin) == before
