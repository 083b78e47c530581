"""Who is calling: the value the identify step hands to the authorize step."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sessions import Session

SESSION_COOKIE = "mcp_gateway_session"


@dataclass(frozen=True)
class Identity:
    subject: str
    username: str
    provider: str
    groups: tuple[str, ...] = ()
    direct_scopes: tuple[str, ...] = ()
    kind: str = "session"          # "session" (cookie), "access" (gateway-issued token), "bearer" (IdP JWT), "anonymous"
    session_id: str | None = None  # the store's id (a hash), never the token
    client_id: str | None = None
    resources: tuple[str, ...] = ()
    # An access token of the OAuth facade: the scopes it was granted (its `scope`). It may use
    # only those, and only while the person's groups still allow them (docs/mcp-clients.md).
    granted_scopes: tuple[str, ...] | None = None

    @property
    def owner(self) -> str:
        """The key MCP sessions are bound to: the same person, whichever session they use."""
        return f"{self.provider}:{self.subject}"


def session_cookie_values(cookie_headers: Iterable[str]) -> list[str]:
    """Every value of the session cookie in these `Cookie` headers — more than one is ambiguous,
    and both the proxy and the login app refuse it. Read as sent, not unquoted: a quoted token is
    not a token (mitmproxy's and Starlette's cookie parsers unquote, and Starlette keeps one value)."""
    values = []
    for header in cookie_headers:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                values.append(value.strip())
    return values


def identity_of(session: Session) -> Identity:
    """The identity a stored session stands for: a browser login (cookie) or an access token the
    OAuth facade issued, whose `scopes` are the scopes it was granted (mcp_gateway/oauth_grants.py)."""
    common = dict(subject=session.subject, username=session.username, provider=session.provider,
                  groups=session.groups, session_id=session.id)
    if session.kind == "access":
        return Identity(**common, kind="access", client_id=session.client_id, resources=session.resources,
                        granted_scopes=session.scopes)
    return Identity(**common, direct_scopes=session.scopes, kind="session")


# With authentication switched off (MCP_AUTH_ENABLED=false) every caller is this one.
ANONYMOUS = Identity(subject="anonymous", username="anonymous", provider="none", kind="anonymous")
