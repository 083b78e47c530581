"""Password hashing for local accounts: scrypt (memory-hard), self-describing encoded hashes.

Format: `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>` (standard base64, unpadded), so the cost
can be raised later while old hashes keep verifying. Create one with `scripts/hash-password`.
"""

import base64
import binascii
import hashlib
import hmac
import os

SCHEME = "scrypt"
N, R, P = 2**15, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# Bound on the parameters read from a stored hash (128·n·r·p bytes is scrypt's memory, and
# its time grows alike): a hostile or mistyped hash in the config must not make one login
# attempt allocate gigabytes or run for minutes. The default cost uses 32 MiB.
_MAX_COST = 256 * 1024 * 1024
_DUMMY_SALT = b"\x00" * _SALT_BYTES


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
        maxmem=2 * _MAX_COST,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, n: int = N) -> str:
    """A new encoded hash of `password` with a random salt, at scrypt cost `n` (a power of two)."""
    salt = os.urandom(_SALT_BYTES)
    digest = _scrypt(password, salt, n, R, P, _HASH_BYTES)
    return f"{SCHEME}${n}${R}${P}${_b64(salt)}${_b64(digest)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n_text, r_text, p_text, salt_text, hash_text = encoded.split("$")
    if scheme != SCHEME or not all(t.isascii() and t.isdigit() for t in (n_text, r_text, p_text)):
        raise ValueError("not an scrypt hash")
    n, r, p = int(n_text), int(r_text), int(p_text)
    if not (n > 1 and n & (n - 1) == 0 and r > 0 and p > 0 and 128 * n * r * p <= _MAX_COST):
        raise ValueError("scrypt parameters out of bounds")
    salt, expected = _unb64(salt_text), _unb64(hash_text)
    if not salt or not 16 <= len(expected) <= 64:
        raise ValueError("bad salt or hash length")
    return n, r, p, salt, expected


def is_password_hash(encoded: object) -> bool:
    """True if `encoded` is a well-formed hash this module can verify (config validation)."""
    try:
        _parse(encoded)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError, binascii.Error):
        return False
    return True


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches `encoded`; False for a mismatch or any malformed input."""
    try:
        n, r, p, salt, expected = _parse(encoded)
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, TypeError, AttributeError, UnicodeError, MemoryError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def dummy_verify() -> None:
    """Spend the time of one real check, for a username that does not exist.

    Without it, "no such user" answers faster than "wrong password" and leaks which
    usernames exist.
    """
    hmac.compare_digest(_scrypt("", _DUMMY_SALT, N, R, P, _HASH_BYTES), b"\x00" * _HASH_BYTES)
