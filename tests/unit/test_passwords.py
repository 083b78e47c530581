import base64
import hashlib
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_gateway import passwords
from mcp_gateway.passwords import dummy_verify, hash_password, is_password_hash, verify_password

pytestmark = pytest.mark.timeout(60)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "hash-password"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def test_hash_is_self_describing_scrypt_with_a_random_salt():
    encoded = hash_password("correct horse battery staple")

    match = re.fullmatch(r"scrypt\$32768\$8\$1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)", encoded)
    assert match
    salt, digest = (base64.b64decode(part + "=" * (-len(part) % 4)) for part in match.groups())
    assert len(salt) == 16 and len(digest) == 32
    assert hash_password("correct horse battery staple") != encoded


@pytest.mark.parametrize("password", ["correct horse battery staple", "pässwörd-ユニコード", " spaces ", "x" * 4096])
def test_verify_accepts_the_password_and_nothing_else(password: str):
    encoded = hash_password(password)

    assert verify_password(password, encoded)
    assert not verify_password(password + "x", encoded)
    assert not verify_password(password[:-1], encoded)
    assert not verify_password("", encoded)


def test_verify_reads_cost_parameters_from_the_hash():
    salt = os.urandom(16)
    digest = hashlib.scrypt(b"older cost", salt=salt, n=2**14, r=8, p=1, dklen=32)
    encoded = f"scrypt$16384$8$1${_b64(salt)}${_b64(digest)}"

    assert is_password_hash(encoded)
    assert verify_password("older cost", encoded)
    assert not verify_password("other", encoded)


def test_hash_at_another_cost_records_it_and_verifies():
    encoded = hash_password("cheaper", n=2**10)

    assert encoded.startswith("scrypt$1024$8$1$")
    assert verify_password("cheaper", encoded)
    assert not verify_password("cheaper!", encoded)


VALID = hash_password("pw")
_, _, _, _, VALID_SALT, VALID_HASH = VALID.split("$")
MALFORMED = [
    "", "scrypt", "scrypt$$$$$", "pw", "$".join(["scrypt"] * 6), VALID + "$extra", VALID.replace("scrypt", "bcrypt"),
    f"scrypt$32767$8$1${VALID_SALT}${VALID_HASH}",  # n not a power of two
    f"scrypt$1073741824$8$1${VALID_SALT}${VALID_HASH}",  # n = 2**30: would need gigabytes
    f"scrypt$1048576$32$16${VALID_SALT}${VALID_HASH}",  # within each bound, too much memory together
    f"scrypt$32768$100000$1${VALID_SALT}${VALID_HASH}", f"scrypt$32768$8$0${VALID_SALT}${VALID_HASH}",
    f"scrypt$-32768$8$1${VALID_SALT}${VALID_HASH}", f"scrypt$ 32768$8$1${VALID_SALT}${VALID_HASH}",
    f"scrypt$32768$8$1$!!!!${VALID_HASH}", f"scrypt$32768$8$1$${VALID_HASH}", f"scrypt$32768$8$1${VALID_SALT}$AAAA",
    f"scrypt$32768$8$1${VALID_SALT}${VALID_HASH}é", f"scrypt$３２７６８$8$1${VALID_SALT}${VALID_HASH}",
    None, 12345, b"bytes", ["scrypt"],
]


@pytest.mark.parametrize("encoded", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_hashes_never_verify_and_never_raise(encoded: object):
    started = time.monotonic()

    assert verify_password("pw", encoded) is False  # type: ignore[arg-type]
    assert is_password_hash(encoded) is False
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("password", [None, 123, b"pw", "\ud800"])
def test_odd_passwords_are_refused_not_raised(password: object):
    assert verify_password(password, VALID) is False  # type: ignore[arg-type]


def test_dummy_verify_costs_as_much_as_a_real_check(monkeypatch):
    # The cost of a check is the one scrypt it runs: the same parameters mean the same time
    # (comparing wall-clock timings of a few runs would only measure the machine's load).
    runs = []
    real_scrypt = passwords._scrypt
    monkeypatch.setattr(passwords, "_scrypt", lambda password, salt, *cost: runs.append(cost)
                        or real_scrypt(password, salt, *cost))
    verify_password("wrong", VALID)
    dummy_verify()
    assert len(runs) == 2 and runs[0] == runs[1], runs


def test_hash_password_script_reads_stdin_when_not_a_terminal():
    result = subprocess.run([sys.executable, SCRIPT], input="s3cret pass\n", capture_output=True, text=True,
                            timeout=30, cwd="/")

    assert result.returncode == 0, result.stderr
    assert verify_password("s3cret pass", result.stdout.strip())


def test_hash_password_script_refuses_an_empty_password():
    result = subprocess.run([sys.executable, SCRIPT], input="\n", capture_output=True, text=True, timeout=30)

    assert result.returncode != 0 and "empty" in result.stderr


def _run_on_a_terminal(*answers: str) -> tuple[int, str]:
    """Run the script with a pseudo-terminal as its controlling tty, typing `answers` at the prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the script
        os.execv(sys.executable, [sys.executable, str(SCRIPT)])
    output, pending, deadline = b"", list(answers), time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.endswith(b": "):  # a prompt waits for input
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_hash_password_script_asks_twice_on_a_terminal():
    code, output = _run_on_a_terminal("typed secret", "typed secret")

    assert code == 0, output
    assert "typed secret" not in output  # not echoed
    assert verify_password("typed secret", output.strip().splitlines()[-1])


def test_hash_password_script_refuses_different_answers():
    code, output = _run_on_a_terminal("one", "two")

    assert code != 0 and "differ" in output
