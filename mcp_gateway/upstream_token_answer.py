"""Reading a service's token answer (RFC 6749 §5.1) as something hostile.

The access token goes into the header of every request forwarded for the user, so only a
plain token is kept: a string of printable ASCII without spaces (RFC 6749 Appendix A.12
without the space, which `Authorization: Bearer` cannot carry, RFC 6750 §2.1), at most
MAX_TOKEN_LENGTH characters. The same for the refresh token. `token_type`, when given, must
be Bearer (RFC 6749 §7.1: a client does not use a token type it does not understand).
`expires_in` is a positive finite number of seconds, or a string of digits (as Azure AD v1
wrote it); without one the token is used until the service refuses it. Anything else makes
the whole answer unusable: nothing is stored (docs/end-to-end-tokens.md).
"""

from __future__ import annotations

import math
from typing import Any

MAX_TOKEN_LENGTH = 16 * 1024
_TOKEN_CHARACTERS = frozenset(chr(c) for c in range(0x21, 0x7F))


class UnusableTokenAnswer(ValueError):
    """Says which field is wrong, never its value."""


def checked_token(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise UnusableTokenAnswer(f"{field} is not a non-empty string")
    if len(value) > MAX_TOKEN_LENGTH:
        raise UnusableTokenAnswer(f"{field} is longer than {MAX_TOKEN_LENGTH} characters")
    if not set(value) <= _TOKEN_CHARACTERS:
        raise UnusableTokenAnswer(f"{field} holds characters other than printable ASCII")
    return value


def checked_token_type(value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value.lower() == "bearer"):
        raise UnusableTokenAnswer("token_type is not Bearer")


def expires_in_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnusableTokenAnswer("expires_in is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise UnusableTokenAnswer("expires_in is out of range") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise UnusableTokenAnswer("expires_in is not a positive finite number")
    return seconds
