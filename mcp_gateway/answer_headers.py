"""What of an upstream's answer head reaches the client.

Every server, the login app and the registry pages share the gateway's one origin, so an
upstream must not send what acts on that whole origin: a cookie (one named
`mcp_gateway_session` would replace the person's gateway session; any other would be sent to
every server), an order to clear the site's data, a CORS grant, an alternative service or a
reporting endpoint for the origin, HSTS, a service-worker scope, a refresh to elsewhere, or a
content security policy of its own. Those are dropped.

Every upstream answer then gets `X-Content-Type-Options: nosniff` and a sandboxing
`Content-Security-Policy`: a page an upstream serves (an HTML error page, or a hostile one a
browser is led to) renders with no script and no access to the gateway's origin. MCP clients
read JSON and event streams and never look at either header.

Redirects are not passed on: MCP has none, and one would send a client's request — or a
browser — wherever the upstream says (docs/data-plane.md).
"""

from __future__ import annotations

from collections.abc import Iterable

ORIGIN_WIDE_NAMES = frozenset({
    "set-cookie", "set-cookie2", "clear-site-data", "alt-svc", "strict-transport-security",
    "service-worker-allowed", "nel", "report-to", "reporting-endpoints", "refresh",
    "content-security-policy", "content-security-policy-report-only", "public-key-pins",
    "public-key-pins-report-only", "expect-ct", "origin-agent-cluster",
})
ORIGIN_WIDE_PREFIXES = ("access-control-",)

UPSTREAM_ANSWER_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox; default-src 'none'; frame-ancestors 'none'",
}


def origin_wide(names: Iterable[str]) -> list[str]:
    """The names among `names` an upstream may not send (lower-cased, once each, in order)."""
    found: list[str] = []
    for name in names:
        lower = name.strip().lower()
        if (lower in ORIGIN_WIDE_NAMES or lower.startswith(ORIGIN_WIDE_PREFIXES)) and lower not in found:
            found.append(lower)
    return found


def is_redirect(status: int) -> bool:
    """An answer that sends the client elsewhere (304 Not Modified sends nobody anywhere)."""
    return 300 <= status < 400 and status != 304
