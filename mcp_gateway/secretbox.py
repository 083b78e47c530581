"""Authenticated encryption of small secrets (refresh tokens) with a key derived from SECRET_KEY.

The key is derived with HKDF-SHA256 so SECRET_KEY, which also signs other things, is never
used directly as an encryption key. Each value is sealed with AES-256-GCM under a fresh
96-bit nonce; the output is `v1.<urlsafe base64 of nonce + ciphertext + tag>`.
"""

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1."
_NONCE_BYTES = 12
_HKDF_INFO = b"mcp-gateway secretbox v1"


class SecretBoxError(ValueError):
    """A sealed value could not be opened: wrong SECRET_KEY, tampered or malformed."""


class SecretBox:
    """Seal and open strings with a key derived from `secret_key`.

    `context` binds a ciphertext to where it belongs (e.g. a session id): opening it with
    another context fails, so a sealed value copied elsewhere is useless.
    """

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("SecretBox needs a non-empty SECRET_KEY")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            secret_key.encode("utf-8")
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, context: str = "") -> str:
        if not isinstance(token, str) or not token.startswith(_VERSION):
            raise SecretBoxError("not a sealed value of this gateway (unknown format)")
        try:
            raw = base64.urlsafe_b64decode(token[len(_VERSION):].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SecretBoxError("sealed value is not valid base64") from exc
        if len(raw) < _NONCE_BYTES + 16:
            raise SecretBoxError("sealed value is truncated")
        try:
            plaintext = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
        except InvalidTag as exc:
            raise SecretBoxError("sealed value does not open: wrong SECRET_KEY or tampered data") from exc
        return plaintext.decode("utf-8")
