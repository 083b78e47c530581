"""An upstream's answer may not act on the gateway's whole origin (mcp_gateway/answer_headers.py).

Every server, the login app and the registry pages share one origin. A hostile or careless
upstream answered through the gateway with `Set-Cookie: mcp_gateway_session=…` (replacing the
person's gateway session in their browser: session fixation), `Clear-Site-Data`, CORS grants,
`Alt-Svc`, reporting endpoints, a `Refresh` elsewhere, and with an HTML page whose script ran on
the gateway's origin — all passed through. And its redirects went to the client as they came.
"""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from tests.support.gateway import run_gateway, server_entry
from tests.support.http_server import QuietHandler, serving
from tests.support.mcp_clients import ACCEPT

pytestmark = pytest.mark.timeout(120)

ORIGIN_WIDE = {
    "Set-Cookie": "mcp_gateway_session=attackers-session; Path=/; HttpOnly",
    "SET-COOKIE2": "other=1",
    "Clear-Site-Data": '"cookies", "storage"',
    "Access-Control-Allow-Origin": "https://evil.example",
    "access-control-allow-credentials": "true",
    "Access-Control-Expose-Headers": "*",
    "Alt-Svc": 'h3=":4443"; ma=86400',
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Service-Worker-Allowed": "/",
    "NEL": '{"report_to": "evil", "max_age": 86400}',
    "Report-To": '{"group": "evil", "endpoints": [{"url": "https://evil.example/r"}]}',
    "Reporting-Endpoints": 'evil="https://evil.example/r"',
    "Refresh": "0; url=https://evil.example/",
    "Content-Security-Policy": "script-src *",
    "Content-Security-Policy-Report-Only": "default-src 'none'; report-uri https://evil.example/r",
    "Origin-Agent-Cluster": "?0",
}
PAGE = b"<html><body><script>fetch('/oauth/me').then(r => r.text()).then(alert)</script></body></html>"
REDIRECTS = [301, 302, 303, 307, 308]
OUR_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


class Hostile(QuietHandler):
    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/redirect/"):
            status = int(self.path.split("/")[2])
            return self.send(status, b"", {"location": "https://evil.example/phish", **ORIGIN_WIDE})
        self.send(200, PAGE, {"content-type": "text/html", "mcp-session-id": "kept-as-is", **ORIGIN_WIDE})

    do_GET = do_POST = do_DELETE = answer


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with ExitStack() as stack:
        port = stack.enter_context(serving(Hostile))
        servers = [server_entry("page", f"http://127.0.0.1:{port}/page", sse_path="/page/sse")]
        servers += [server_entry(f"r{status}", f"http://127.0.0.1:{port}/redirect/{status}",
                                 sse_path=f"/redirect/{status}/sse") for status in REDIRECTS]
        yield stack.enter_context(run_gateway(tmp_path_factory.mktemp("gw-answer-heads"), servers))


def requests_to(gw, server: str) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    ping = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    return [
        ("GET", gw.streamable_url(server), {"accept": "text/html"}, None),      # a browser led there
        ("GET", gw.streamable_url(server), {"accept": "text/event-stream"}, None),
        ("POST", gw.streamable_url(server), {**ACCEPT, "content-type": "application/json"}, ping),
        ("GET", gw.sse_url(server), {"accept": "text/event-stream"}, None),
    ]


@pytest.mark.parametrize("index", range(3), ids=["browser-get", "stream-get", "post"])
def test_an_upstream_answer_carries_nothing_that_acts_on_the_gateways_origin(gw, index):
    method, url, headers, body = requests_to(gw, "page")[index]

    answer = httpx.request(method, url, headers=headers, content=body, timeout=10)

    assert answer.status_code == 200
    leaked = sorted(name for name in ORIGIN_WIDE if name.lower() in answer.headers and name.lower() not in
                    ("content-security-policy",))
    assert leaked == [], leaked
    assert answer.headers.get_list("content-security-policy") == [OUR_CSP]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["mcp-session-id"] == "kept-as-is"  # what MCP needs still passes
    assert "set-cookie" not in answer.headers and not answer.cookies
    assert "script" in answer.text  # the page itself passes: the sandbox, not a rewrite, disarms it
    assert "server page: dropped from its answer: set-cookie" in gw.log


def test_an_sse_stream_answered_with_a_page_is_refused(gw):
    """The SSE transport's stream is read on the way (its endpoint rewritten, tools/list narrowed):
    a 2xx answer that is no event stream cannot be, so it does not pass."""
    method, url, headers, body = requests_to(gw, "page")[3]

    answer = httpx.request(method, url, headers=headers, content=body, timeout=10)

    assert answer.status_code == 502 and "event stream" in answer.json()["message"]
    assert not [name for name in ORIGIN_WIDE if name.lower() in answer.headers
                and name.lower() != "content-security-policy"]
    assert "script" not in answer.text


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("index", range(4), ids=["browser-get", "stream-get", "post", "sse-get"])
def test_an_upstream_redirect_is_not_passed_on(gw, status, index):
    method, url, headers, body = requests_to(gw, f"r{status}")[index]

    answer = httpx.request(method, url, headers=headers, content=body, timeout=10)

    assert answer.status_code == 502, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert "redirect" in answer.json()["message"]
    assert "location" not in answer.headers and "set-cookie" not in answer.headers
