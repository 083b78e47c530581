"""Request headers that never travel upstream, compared by normalised name.

A client must not be able to assert an identity the gateway did not establish, nor pass on
forwarding information the gateway writes itself. Upstreams read header names their own way:
case never matters, and WSGI servers (and frameworks on top of CGI-style environs) turn `_`
into `-`, so `X_User` reaches an application as `X-User`. Names are therefore compared
lower-cased with `_` read as `-`, and whole families are stripped by prefix
(`x-forwarded-*` takes `X_Forwarded_For` and `x-forwarded-anything`).

Operators add their own families with `[gateway] strip_request_headers` (see
docs/configuration.md): exact names, or prefixes ending in `*`.
"""

from __future__ import annotations

import re
from typing import Iterable

# Where the request came from: only the gateway says that (to the login app, which throttles
# sign-ins per client address, too).
FORWARDING_NAMES = frozenset({
    "forwarded", "true-client-ip", "cf-connecting-ip", "cf-connecting-ipv6", "fastly-client-ip", "client-ip",
    "x-cluster-client-ip", "x-originating-ip", "x-client-ip",
})
FORWARDING_PREFIXES = ("x-forwarded", "x-real-ip", "x-envoy-", "x-original-")
# Exact names (normalised), beside the forwarding ones.
STRIPPED_NAMES = FORWARDING_NAMES | {"authorization", "proxy-authorization", "origin", "x-rewrite-url",
                                     "x-arr-clientcert"}
# Families: every name starting with one of these (normalised).
STRIPPED_PREFIXES = FORWARDING_PREFIXES + (
    # identity the gateway (or another auth front end) asserts
    "x-user", "x-groups", "x-auth", "x-mcp-gateway-", "remote-", "x-remote-", "impersonate-",
    "x-webauth-", "x-consumer-", "x-credential-", "x-anonymous-", "x-authenticated-",
    "x-amzn-oidc-", "x-amzn-mtls-", "x-goog-authenticated-", "x-goog-iap-", "x-ms-client-principal",
    "x-ms-token-", "cf-access-", "x-pomerium-", "x-vouch-", "oidc-claim-", "tailscale-user-",
    "x-client-cert", "x-ssl-", "ssl-client-", "client-cert", "x-client-verify", "x-client-dn", "x-client-s-dn",
    "x-client-i-dn", "x-tls-client-", "x-jwt-assertion", "x-appengine-", "x-serverless-authorization",
    # what some frameworks read as the real method
    "x-http-method", "x-method-override",
)

# Headers the gateway reads, frames the request with or sets itself. Their `_` spellings would
# reach a WSGI upstream as the header itself (`Mcp_Session_Id` as `Mcp-Session-Id`, past the
# session binding), so only the dashed spelling travels.
DASHED_ONLY_NAMES = frozenset({
    "mcp-session-id", "mcp-protocol-version", "last-event-id", "content-type", "content-length",
    "transfer-encoding", "keep-alive", "proxy-connection",
})

_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'+.^_`|~-]+\*?$")
# An RFC 9110 field name. Anything else (non-ASCII look-alikes such as `X-Uſer`, which some
# languages upper-case to `X-USER`; spaces; controls) has no legitimate use and is never forwarded.
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def other_spelling(name: str, of: str) -> bool:
    """`name` is read as header `of` by some upstream, but is not spelled as `of` (case aside)."""
    return name.lower() != of.lower() and normalise(name) == normalise(of)


def is_forwarding(name: str) -> bool:
    lower = normalise(name)
    return lower in FORWARDING_NAMES or lower.startswith(FORWARDING_PREFIXES)


def parse_pattern(text: str) -> str:
    """An operator's pattern (`X-Corp-User` or `X-Corp-*`), normalised; ValueError when it is not one."""
    if not isinstance(text, str) or not _PATTERN.fullmatch(text.strip()) or text.strip() == "*":
        raise ValueError(f"expected a header name, or a prefix ending in '*', got {text!r}")
    return normalise(text)


class HeaderStripList:
    """Decides, for a raw header name, whether it is removed before forwarding."""

    def __init__(self, extra_patterns: Iterable[str] = ()):
        patterns = [parse_pattern(p) for p in extra_patterns]
        self.names = STRIPPED_NAMES | {p for p in patterns if not p.endswith("*")}
        self.prefixes = STRIPPED_PREFIXES + tuple(p[:-1] for p in patterns if p.endswith("*"))
        self._seen: dict[str, bool] = {}

    def strips(self, name: str) -> bool:
        known = self._seen.get(name)
        if known is None:
            lower = normalise(name)
            known = (lower in self.names or lower.startswith(self.prefixes) or not _TOKEN.fullmatch(lower)
                     or ("_" in name and lower in DASHED_ONLY_NAMES))
            if len(self._seen) < 4096:  # header names repeat; a flood of odd ones only skips the cache
                self._seen[name] = known
        return known
