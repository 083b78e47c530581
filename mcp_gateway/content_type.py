"""The one Content-Type an MCP message may carry: JSON in UTF-8.

The gateway decodes a body as UTF-8 to inspect it; an upstream that honours another charset
(UTF-7, UTF-16, Latin-1, …) would parse a different message from the same bytes. So any other
charset, or anything the reading of which could differ between two parsers — several
Content-Type headers, several charset parameters, another media type — is refused, and the
gateway forwards a canonical `application/json` (addons/forwarder.py) — also when the client
sent no Content-Type at all, since the upstream then reads the body as the gateway did.
"""

from __future__ import annotations

JSON = "application/json"
UTF8 = "utf-8"


def json_content_type_problem(values: list[str]) -> str | None:
    """None when the request's Content-Type headers say UTF-8 JSON; otherwise why not."""
    if not values:
        return None  # read as UTF-8 JSON, and forwarded as application/json: one reading either way
    if len(values) > 1:
        return "more than one Content-Type header"
    media, *parameters = values[0].split(";")
    media = media.strip().lower()
    if media != JSON:
        return f"MCP messages are {JSON}, not {media[:60]!r}"
    charsets = []
    for parameter in parameters:
        name, equals, value = parameter.partition("=")
        name = name.strip().lower()
        if not name and not equals and not value.strip():
            continue  # an empty parameter ("application/json;")
        if not equals:
            return "a Content-Type parameter without a value"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name == "charset":
            charsets.append(value.lower())
    if len(charsets) > 1:
        return "more than one charset in Content-Type"
    if charsets and charsets[0] != UTF8:
        return f"only charset=utf-8 is accepted, not {charsets[0][:40]!r}"
    return None
