"""Refusing cross-site state changes: a same-origin `Origin`, or a CSRF token bound to the session."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from mcp_gateway.config import GatewayConfig


def csrf_token(config: GatewayConfig, session_id: str) -> str:
    key = (config.auth.secret_key or "").encode()
    return hmac.new(key, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def foreign_origin(request: Request, config: GatewayConfig) -> bool:
    """True when the request carries an Origin (or Referer) of another site."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin != config.public_origin
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def same_origin_or_token(request: Request, config: GatewayConfig, session_id: str | None, token: str | None) -> bool:
    if request.headers.get("origin") == config.public_origin:
        return True
    if session_id and token and hmac.compare_digest(token, csrf_token(config, session_id)):
        return True
    return False
