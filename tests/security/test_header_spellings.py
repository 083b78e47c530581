"""More spellings of identity headers than the family list names: upper case, trailing or
leading whitespace in the name, Unicode look-alikes and invisible characters, an obs-folded
value. Whatever the spelling, a header an upstream could read as an identity either never
reaches it or the request is refused; and no spelling grants anything."""

from __future__ import annotations

import json

import pytest

from mcp_gateway.header_policy import HeaderStripList, normalise
from tests.security.hostile import request, session_cookie

pytestmark = pytest.mark.timeout(60)

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()

SPELLINGS = [
    "X-USER", "x-user", "x_user", "X_USER", "X-User ", "X-User\t", " X-User", "X-User-",
    "X-U\u017fer",       # LATIN SMALL LETTER LONG S: upper-cases to "S"
    "X\u2010User",       # HYPHEN
    "X-User\u200b",      # ZERO WIDTH SPACE
    "\uff38-User",       # FULLWIDTH X
    "X-\u0055ser\u0301",  # combining accent
    "Remote-User\u00a0",  # no-break space
    "X-Forwarded-For ", "Forwarded\t",
]
# Identity headers of other front ends, beyond the first families: WSO2's end-user JWT, App Engine's
# user and cron headers, Cloud Run's, RFC 9440's client certificate, nginx/Traefik certificate checks.
FRONT_ENDS = ["X-JWT-Assertion", "X-Jwt-Assertion-Custom", "X-AppEngine-User-Email", "X-Appengine-User-Id",
              "X-Appengine-Cron", "X-Serverless-Authorization", "Client-Cert", "Client-Cert-Chain",
              "X-Client-Verify", "X-Client-DN", "X-Client-S-DN", "X-Tls-Client-Cert"]


def _names_received(recorder) -> set[str]:
    return {normalise(name) for name in recorder.requests[-1].headers}


@pytest.mark.parametrize("name", SPELLINGS + FRONT_ENDS, ids=[n.encode("unicode_escape").decode()
                                                              for n in SPELLINGS + FRONT_ENDS])
def test_the_strip_list_takes_every_spelling_whatever_the_proxy_in_front_lets_through(name):
    """Decided on the name alone: mitmproxy or the upstream's parser may drop some of these,
    another HTTP stack may not."""
    assert HeaderStripList().strips(name)


@pytest.mark.parametrize("name", SPELLINGS + FRONT_ENDS, ids=[n.encode("unicode_escape").decode()
                                                              for n in SPELLINGS + FRONT_ENDS])
def test_no_spelling_of_an_identity_header_reaches_the_upstream(auth_gateway, recorder, signed_in, name):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), (name, "admin")], PING)
    if answer.status != 200:  # refused outright: fine, as long as nothing went upstream
        assert 400 <= answer.status < 500 and len(recorder.requests) == before, answer.head
        return
    received = recorder.requests[-1].headers
    assert all("admin" != value.strip() for key, value in received.items() if key != "cookie"), received


@pytest.mark.parametrize("name", SPELLINGS[:9], ids=[n.encode("unicode_escape").decode() for n in SPELLINGS[:9]])
def test_no_spelling_grants_anything(auth_gateway, signed_in, name):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["dana"]), (name, "admin")], PING)
    assert answer.status in (400, 403), answer.head


def test_an_obs_folded_identity_header_is_refused(auth_gateway, recorder, signed_in):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), ("X-Trace", "a\r\n X-User: admin")], PING)
    assert answer.status == 400 and len(recorder.requests) == before
