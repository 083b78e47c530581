"""Who is calling the registry MCP server's SSE transport, as the proxy tells the login app.

The SSE transport of the built-in registry server runs in the login app (one process behind
every proxy worker, so a stream and the POSTs into it meet there; docs/registry-ui.md). The
proxy has identified and authorized the request; it passes the caller on in one header signed
with a key derived from SECRET_KEY, bound to the method, the exact target, a digest of the body
and a short expiry. Nothing else reaches the login app's registry routes: a request without a
valid header — a local process calling the loopback port, a replay to another path or with
another body, an old header — is refused there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

CALLER_HEADER = "x-mcp-gateway-registry-caller"  # X-MCP-Gateway-* : the proxy strips what clients send
MAX_AGE_SECONDS = 30.0
_KEY_INFO = b"mcp-gateway registry caller v1"


@dataclass(frozen=True)
class Caller:
    owner: str       # the identity's stable owner key (what MCP sessions are bound to)
    username: str
    scopes: frozenset[str]


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _KEY_INFO, hashlib.sha256).digest()


def _signed_text(payload: str, method: str, target: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((payload, method.upper(), target, digest)).encode("utf-8")


def sign_caller(secret_key: str, caller: Caller, method: str, target: str, body: bytes,
                now: float | None = None) -> str:
    issued = time.time() if now is None else now
    document = {"owner": caller.owner, "user": caller.username, "scopes": sorted(caller.scopes),
                "exp": issued + MAX_AGE_SECONDS}
    payload = base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
    mac = hmac.new(_key(secret_key), _signed_text(payload, method, target, body), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def verify_caller(secret_key: str, header: str | None, method: str, target: str, body: bytes,
                  now: float | None = None) -> Caller | None:
    """The caller the header names, or None when it is missing, forged, expired or made for
    another request."""
    if not secret_key or not header or header.count(".") != 1:
        return None
    payload, mac = header.split(".")
    expected = hmac.new(_key(secret_key), _signed_text(payload, method, target, body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        expires = float(document["exp"])
        caller = Caller(str(document["owner"]), str(document["user"]), frozenset(map(str, document["scopes"])))
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        return None
    return caller if (time.time() if now is None else now) <= expires else None
