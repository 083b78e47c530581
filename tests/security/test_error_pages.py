"""Markup and header injection: nothing a caller (or an identity provider) sends comes back as
live HTML or as a header of its own. The gateway's own answers are JSON with fixed messages;
the login app's pages escape every value they show."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.security.conftest import ACCOUNTS
from tests.security.hostile import exchange, gateway_store, parse_answer, request, session_cookie

pytestmark = pytest.mark.timeout(60)

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'-alert(1)-'",
    "</textarea><svg/onload=alert(1)>",
    "{{7*7191}}{%print(7*7191)%}",
    "${7*7191}#{7*7191}",
]
EVALUATED = "50337"  # 7*7191: what a template engine would make of the expressions above
TAGS = ("<script", "<img", "<svg", "</textarea")


def assert_inert(body: str, payload: str) -> None:
    """The payload is shown as text or not at all: never as markup, never evaluated."""
    if any(c in payload for c in '<>"'):
        assert payload not in body, f"{payload!r} came back unescaped"
    for tag in TAGS:
        if tag in payload:
            assert tag not in body.lower(), f"{tag} came back unescaped"
    assert EVALUATED not in body, "a template expression was evaluated"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_gateway_refusals_never_echo_the_request(auth_gateway, signed_in, payload):
    encoded = quote(payload, safe="")
    answers = [
        request(auth_gateway.port, "GET", f"/api/execute/{encoded}/sse"),
        request(auth_gateway.port, "GET", f"/api/streamable/x?q={encoded}", [session_cookie(signed_in["admin"])]),
        request(auth_gateway.port, "GET", f"/api/servers/{encoded}", [session_cookie(signed_in["admin"])]),
        request(auth_gateway.port, "POST", "/api/streamable/currenttime", [session_cookie(signed_in["admin"])],
                f'{{"jsonrpc":"2.0","id":1,"method":"{payload}"'.encode()),
        parse_answer(exchange(auth_gateway.port, f"GET /{payload} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                               .encode())),
        parse_answer(exchange(auth_gateway.port, f"GET / HTTP/1.1\r\nX {payload}: y\r\nConnection: close\r\n\r\n"
                                               .encode())),
    ]
    for answer in answers:
        assert answer.status >= 400 and "application/json" in (answer.header("content-type") or ""), answer.head
        assert_inert(answer.body.decode(errors="replace"), payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_login_page_escapes_what_it_shows(auth_gateway, payload):
    page = httpx.get(f"{auth_gateway.url}/oauth/login", params={"next": f"/x{payload}"}, timeout=10)
    assert page.status_code == 200
    assert_inert(page.text, payload)
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_failed_login_page_escapes_what_it_shows(auth_gateway):
    # One failed login for all payloads: failures count against this client's address.
    nasty = "".join(p for p in PAYLOADS if " " not in p)
    failed = httpx.post(f"{auth_gateway.url}/oauth/login/local", headers={"origin": auth_gateway.url}, timeout=15,
                        data={"username": "u" + nasty, "password": "wrong", "next": "/x" + nasty})
    assert failed.status_code == 401
    for payload in PAYLOADS:
        assert_inert(failed.text, payload)


async def test_identity_values_from_the_idp_are_escaped_on_the_signed_in_page(auth_gateway):
    """Username, email and group names come from the identity provider: shown, never run."""
    store = gateway_store(auth_gateway)
    try:
        token, _ = await store.create(subject="s", username=PAYLOADS[0], email=PAYLOADS[1], provider="local",
                                      groups=[PAYLOADS[3], "mcp-user"])
    finally:
        await store.close()
    page = httpx.get(f"{auth_gateway.url}/oauth/session", headers={"cookie": f"mcp_gateway_session={token}"},
                     timeout=10)
    assert page.status_code == 200
    assert "&lt;script&gt;" in page.text
    for payload in (PAYLOADS[0], PAYLOADS[1], PAYLOADS[3]):
        assert_inert(page.text, payload)


SPLITTERS = ["%0d%0aSet-Cookie:%20injected=1", "%0aSet-Cookie:%20injected=1", "%E5%98%8A%E5%98%8DSet-Cookie:injected=1",
             "%0d%0a%0d%0a<script>alert(1)</script>"]


@pytest.mark.parametrize("splitter", SPLITTERS)
def test_no_response_splitting_through_redirects(auth_gateway, splitter):
    # the gateway's own redirect of a browser to the login page
    answer = request(auth_gateway.port, "GET", f"/api/servers?x={splitter}", [("Accept", "text/html")])
    assert answer.status == 302
    location = answer.header("location") or ""
    assert location.startswith("/oauth/login?next=") and "\r" not in location and "\n" not in location
    # the login page's links and the login app's redirects, with the splitter in `next`, encoded and decoded
    heads = [answer.head]
    for next_value in (f"/x{splitter}", f"/x{httpx.QueryParams({'v': splitter})['v']}"):
        heads.append(request(auth_gateway.port, "GET", f"/oauth/login?next={quote(next_value, safe='')}").head)
        heads.append(request(auth_gateway.port, "GET", f"/oauth/session?next={quote(next_value, safe='')}").head)
    for head in heads:
        lines = head.lower().split("\r\n")[1:]
        assert not any(line.startswith("set-cookie:") and "injected" in line for line in lines), head
        assert not any(line.startswith("injected") for line in lines) and "<script" not in head.lower()


def test_no_response_splitting_through_the_login_redirect(auth_gateway):
    """After a successful login the browser goes to `next`: CR/LF in it never becomes a header."""
    for splitter in SPLITTERS[:2]:
        form = (f"username=bob&password={ACCOUNTS['bob'][0]}&next=" + quote(f"/x{splitter}", safe="")).encode()
        page = request(auth_gateway.port, "POST", "/oauth/login/local",
                       [("Origin", auth_gateway.url), ("Content-Type", "application/x-www-form-urlencoded")], form)
        assert page.status == 303
        lines = page.head.lower().split("\r\n")[1:]
        assert not any("injected" in line and not line.startswith("location:") for line in lines), page.head
        assert "\r" not in (page.header("location") or "")
