"""The one error the authorization-server facade answers with (RFC 6749 §5.2, RFC 7591 §3.2.2)."""

from __future__ import annotations

from collections.abc import Mapping


class OAuthError(Exception):
    """`error` is the RFC's code (invalid_grant, invalid_redirect_uri, ...); `description` is safe
    to show and to log; `status` and `headers` shape the HTTP answer."""

    def __init__(self, error: str, description: str, status: int = 400, headers: Mapping[str, str] | None = None):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})
