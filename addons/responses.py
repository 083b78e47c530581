"""JSON answers the gateway gives itself, rendered the same way everywhere."""

from __future__ import annotations

import json

from mitmproxy import http

REASONS = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 411: "length_required", 413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type", 429: "too_many_requests",
    500: "gateway_error", 502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout",
}


NO_STORE = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def json_body(status: int, message: str, **extra: object) -> bytes:
    body = {"error": REASONS.get(status, "error"), "message": message, "status": status, **extra}
    return json.dumps(body).encode()


def json_response(status: int, message: str, headers: dict[str, str] | None = None, **extra: object) -> http.Response:
    return http.Response.make(
        status,
        json_body(status, message, **extra),
        {"content-type": "application/json", **NO_STORE, **(headers or {})},
    )


def json_ok(payload: object, status: int = 200) -> http.Response:
    return http.Response.make(
        status, json.dumps(payload).encode(),
        {"content-type": "application/json", **NO_STORE},
    )


def media_type(response: http.Response) -> str:
    """`Content-Type` without its parameters, as a client reads it: case does not matter."""
    return response.headers.get("content-type", "").split(";")[0].strip().lower()
