"""PKCE's S256 transform (RFC 7636 §4.2): BASE64URL(SHA256(ASCII(code_verifier))), unpadded.

Both ends use it: the facade checks a client's verifier, the upstream-OAuth client sends its
own challenge. Written here rather than imported from the OAuth client library, which the
proxy would otherwise load at start-up for two lines."""

import base64
import hashlib


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
