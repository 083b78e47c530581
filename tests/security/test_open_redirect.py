"""safe_next against a corpus of open-redirect payloads (after oauth2-proxy's validator tests)."""

from __future__ import annotations

import random
from urllib.parse import urljoin, urlsplit

import pytest

from mcp_gateway.redirects import MAX_NEXT_LENGTH, safe_next

ORIGIN = "https://gateway.example"
DEFAULT = "/fallback"

HOSTILE = [
    # absolute URLs and schemes
    "https://evil.example",
    "https://evil.example/",
    "http://evil.example/path",
    "HTTPS://EVIL.EXAMPLE",
    "hTtPs://evil.example",
    "ftp://evil.example",
    "ws://evil.example/socket",
    "http:evil.example",
    "https:evil.example",
    "http:/evil.example",
    "https:/\\evil.example",
    "http:\\\\evil.example",
    "https://gateway.example@evil.example/",
    "https://gateway.example.evil.example/",
    "https://evil.example#https://gateway.example/",
    "https://evil.example?https://gateway.example/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "JAVASCRIPT:alert(1)",
    "javascript://%0aalert(1)",
    "javascript:/gateway.example/%0aalert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    " javascript:alert(1)",
    "\x01javascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:text/html,x",
    "file:///etc/passwd",
    "mailto:victim@evil.example",
    "about:blank",
    "blob:https://evil.example/uuid",
    "evil.example",
    "evil.example/path",
    "api/servers",
    "./api/servers",
    "../api/servers",
    "?next=/x",
    "#/x",
    "@evil.example",
    # protocol-relative and its backslash cousins
    "//evil.example",
    "//evil.example/",
    "//evil.example/path?x=1",
    "///evil.example",
    "////evil.example",
    "//user@evil.example",
    "//user:pass@evil.example",
    "//gateway.example@evil.example",
    "//evil.example\\@gateway.example",
    "//127.0.0.1",
    "//0x7f.1",
    "//2130706433",
    "//[::1]/",
    "//localhost:7860/",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "\\evil.example",
    "/\\\\evil.example",
    "/path\\..\\..\\/evil",
    "/api\\servers",
    "/api/servers?x=a\\b",
    # whitespace and control characters (browsers strip tab/CR/LF inside URLs)
    " //evil.example",
    "\t//evil.example",
    "\n//evil.example",
    "\r//evil.example",
    "\x00//evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/\r\n/evil.example",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "/\x0c/evil.example",
    "/\x7f/evil.example",
    "/api/servers\r\nSet-Cookie: session=attacker",
    "/api/servers\nLocation: https://evil.example",
    "/api/servers\r",
    "/api servers",
    "/api/servers ",
    " /api/servers",
    "/api/servers?x=\r\n",
    "/api/servers#\n",
    # percent-encoded slashes, backslashes and control characters
    "/%2fevil.example",
    "/%2Fevil.example",
    "/%2f%2fevil.example",
    "/%2F%2Fevil.example",
    "%2f%2fevil.example",
    "%2F/evil.example",
    "/%5cevil.example",
    "/%5Cevil.example",
    "%5c%5cevil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d/evil.example",
    "/%0d%0aSet-Cookie:x=1",
    "/%00/evil.example",
    "/%20/evil.example",
    "/%7f",
    "/api/%0d%0aLocation:%20https://evil.example",
    "/%e2%80%ae/evil.example",  # right-to-left override
    "/%e2%80%8b/evil.example",  # zero-width space
    "/%c2%a0/evil.example",  # no-break space
    "/%e2%80%a8/evil.example",  # line separator
    "/%ff/evil.example",  # invalid UTF-8
    "/%c0%af/evil.example",  # over-long UTF-8 solidus
    "/%3f//evil.example",
    "/%23//evil.example",
    # double, triple and deeper encodings
    "/%252f%252fevil.example",
    "/%252F/evil.example",
    "/%255cevil.example",
    "/%25252f%25252fevil.example",
    "/%2525252f%2525252fevil.example",
    "/%25%32%66/evil.example",
    "/%25%35%63evil.example",
    "/%250d%250a/evil.example",
    # dot segments that normalise into //evil (or out of the path)
    "/.//evil.example",
    "/./",
    "/.",
    "/..",
    "/../",
    "/..//evil.example",
    "/../evil.example",
    "/api/../../evil",
    "/api/./servers",
    "/api/..%2f..%2fevil",
    "/%2e//evil.example",
    "/%2E%2E//evil.example",
    "/%2e%2e/%2e%2e/",
    "/.%2e/evil",
    "/%252e%252e/evil",
    "/api//servers",
    "/api/servers//",
    "/a/b//c",
    "/https://evil.example",
    "/http:%2f%2fevil.example",
    # unicode look-alikes (raw and percent-encoded)
    "／／evil.example",
    "/／evil.example",
    "/＼evil.example",
    "＼＼evil.example",
    "/%ef%bc%8fevil.example",  # fullwidth solidus
    "/%EF%BC%BCevil.example",  # fullwidth reverse solidus
    "/%e2%81%84evil.example",  # fraction slash
    "/%e2%88%95evil.example",  # division slash
    "/%ef%b9%a8evil.example",  # small reverse solidus
    "/%e2%80%a4%e2%80%a4/evil",  # one-dot leaders, NFKC → ".."
    "/．．/evil",
    "/api/servers\u200b",
    "/\u2028/evil.example",
    "/\u00a0/evil.example",
    "/café",
    "/caf%C3%A9/%2f/evil",
    "/%e2%80%8c%2f/evil",  # zero-width non-joiner
    "/\u202e/evil.example",
    # empties, non-strings and sizes
    "",
    "/" + "a" * MAX_NEXT_LENGTH,
    "/api/servers?" + "x" * MAX_NEXT_LENGTH,
    "/" + "%2f" * 1000,
]

GOOD = [
    "/",
    "/api/servers",
    "/api/servers/",
    "/api/servers?x=1",
    "/api/servers?x=1&y=two#frag",
    "/api/servers/currenttime",
    "/api/servers/currenttime/toggle",
    "/api/execute/currenttime/sse",
    "/api/execute/currenttime/messages/?session_id=abc123",
    "/api/streamable/currenttime",
    "/oauth/me",
    "/oauth/login?next=%2Fapi%2Fservers",
    "/@evil.example",
    "/user@evil.example",
    "/javascript:alert(1)",
    "/search?q=https%3A%2F%2Fevil.example",
    "/search?q=//evil.example",
    "/page#//evil.example",
    "/.well-known/oauth-protected-resource/api/execute/currenttime",
    "/api/servers/my-server_2?view=full&sort=-name",
    "/a/b/c/d/e/f",
    "/" + "a" * (MAX_NEXT_LENGTH - 1),
]


def test_corpus_is_large_and_has_no_duplicates() -> None:
    assert len(HOSTILE) >= 120
    assert len(set(HOSTILE)) == len(HOSTILE)
    assert not set(HOSTILE) & set(GOOD)


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_next_falls_back_to_default(payload: str) -> None:
    assert safe_next(payload, DEFAULT) == DEFAULT


@pytest.mark.parametrize("payload", GOOD)
def test_same_origin_path_passes_unchanged(payload: str) -> None:
    assert safe_next(payload, DEFAULT) == payload
    assert urlsplit(urljoin(ORIGIN + "/base/", payload)).netloc == "gateway.example"


@pytest.mark.parametrize("value", [None, 42, b"/api/servers", ["/"]])
def test_non_string_falls_back_to_default(value: object) -> None:
    assert safe_next(value, DEFAULT) == DEFAULT  # type: ignore[arg-type]


def test_default_is_slash() -> None:
    assert safe_next("//evil.example") == "/"
    assert safe_next(None) == "/"


def test_random_inputs_never_leave_the_origin() -> None:
    """Whatever comes in, what goes out is a Location header value on our host."""
    alphabet = "/\\.%2fF5cC0aAdDe@:?#&= \t\r\n\x00abc～／＼．" + "evil"
    rng = random.Random(20240601)
    for _ in range(5000):
        payload = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        result = safe_next(payload, DEFAULT)
        assert result in (payload, DEFAULT)
        assert "\r" not in result and "\n" not in result and "\\" not in result
        assert result.startswith("/") and not result.startswith("//")
        assert urlsplit(urljoin(ORIGIN + "/", result)).netloc == "gateway.example"
