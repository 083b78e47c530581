"""The post-login `next` parameter: honoured only as a relative path on this origin.

Deliberately stricter than what browsers need, because a value that is harmless
here may be decoded or normalised again further on (a proxy, a second redirect,
`location = url.pathname` in a page) and only then turn into `//evil`:

- printable ASCII only (no whitespace, control characters or look-alike Unicode:
  browsers drop tab/CR/LF inside URLs and some map fullwidth `／` to `/`);
- it starts with one `/` and never contains a backslash (browsers read `\\` as `/`);
- its path, percent-decoded as many times as it takes (bounded), is still printable
  ASCII without backslash, empty segment (`//`) or dot segment (`.`, `..`). So an
  encoded space or non-ASCII letter in the path is refused too: the gateway's own
  paths never need one.

Query and fragment are passed through: they cannot change the target's origin.
"""

from __future__ import annotations

from urllib.parse import unquote

MAX_NEXT_LENGTH = 2048
_MAX_DECODE_ROUNDS = 4
_PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x21, 0x7F))


def safe_next(value: str | None, default: str = "/") -> str:
    """Return `value` if it is a same-origin relative path, otherwise `default`."""
    if not isinstance(value, str) or len(value) > MAX_NEXT_LENGTH:
        return default
    if not set(value) <= _PRINTABLE_ASCII or "\\" in value:
        return default
    path = value.split("?", 1)[0].split("#", 1)[0]
    forms = _decoded_forms(path)
    if all(form is not None and _is_plain_absolute_path(form) for form in forms):
        return value
    return default


def _decoded_forms(path: str) -> list[str | None]:
    """The path and its successive percent-decodings.

    `None` stands for "still changing after the last allowed round": an encoding
    that deep is itself a sign of an attack.
    """
    forms: list[str | None] = [path]
    current = path
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(current, errors="replace")
        if decoded == current:
            return forms
        forms.append(decoded)
        current = decoded
    return [*forms, None]


def _is_plain_absolute_path(path: str) -> bool:
    if not path.startswith("/") or "\\" in path or not set(path) <= _PRINTABLE_ASCII:
        return False
    segments = path[1:].split("/")
    # A trailing slash leaves one empty last segment; that one is fine.
    inner, last = segments[:-1], segments[-1]
    if any(segment in ("", ".", "..") for segment in inner):
        return False
    return last not in (".", "..")
