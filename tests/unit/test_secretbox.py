import base64

import pytest

from mcp_gateway.secretbox import SecretBox, SecretBoxError

KEY = "a SECRET_KEY for the secretbox tests, 32+ bytes"


def test_round_trip_without_the_plaintext_in_the_output():
    box = SecretBox(KEY)

    sealed = box.encrypt("idp-refresh-token-ü")

    assert "idp-refresh-token" not in sealed
    assert box.decrypt(sealed) == "idp-refresh-token-ü"
    assert SecretBox(KEY).decrypt(sealed) == "idp-refresh-token-ü"  # same key, another instance


def test_each_encryption_differs():
    box = SecretBox(KEY)

    assert box.encrypt("same") != box.encrypt("same")


def test_a_wrong_key_does_not_open():
    sealed = SecretBox(KEY).encrypt("secret")

    with pytest.raises(SecretBoxError, match="wrong SECRET_KEY or tampered"):
        SecretBox(KEY + "!").decrypt(sealed)


def test_the_context_must_match():
    box = SecretBox(KEY)
    sealed = box.encrypt("secret", context="session-a")

    assert box.decrypt(sealed, context="session-a") == "secret"
    with pytest.raises(SecretBoxError):
        box.decrypt(sealed, context="session-b")
    with pytest.raises(SecretBoxError):
        box.decrypt(sealed)


def _flip_byte(sealed: str, index: int) -> str:
    prefix, body = sealed[:3], bytearray(base64.urlsafe_b64decode(sealed[3:]))
    body[index] ^= 0x01
    return prefix + base64.urlsafe_b64encode(bytes(body)).decode()


@pytest.mark.parametrize("index", [0, 11, 12, -17, -1])  # nonce, ciphertext, tag
def test_tampering_is_detected(index: int):
    box = SecretBox(KEY)
    sealed = box.encrypt("secret value")

    with pytest.raises(SecretBoxError):
        box.decrypt(_flip_byte(sealed, index))


@pytest.mark.parametrize("garbage", [
    "", "v1.", "v1.!!!!", "v1.AAAA", "v2." + "A" * 40, "plaintext", "v1." + "é" * 40, None, b"v1.AAAA",
])
def test_garbage_raises_secretbox_error(garbage: object):
    with pytest.raises(SecretBoxError):
        SecretBox(KEY).decrypt(garbage)  # type: ignore[arg-type]


def test_an_empty_key_is_refused():
    with pytest.raises(ValueError, match="SECRET_KEY"):
        SecretBox("")


def test_repr_hides_the_key():
    assert KEY not in repr(SecretBox(KEY))
