"""Password hashes for the tests' local accounts.

The tests are about who gets in, not about how long scrypt takes, so their accounts are hashed
at a low scrypt cost (n = 2**10 instead of 2**15): verifying one is ~30× cheaper, and the suite
logs in hundreds of times. Such hashes are what an operator's older, cheaper hash would be —
self-describing, verified by the same code (mcp_gateway/passwords.py). The production cost, the
dummy check for unknown users and ADMIN_PASSWORD (hashed by the login app itself) are unchanged;
tests/unit/test_passwords.py tests them."""

from __future__ import annotations

from functools import cache

from mcp_gateway.passwords import hash_password

TEST_COST = 2**10


@cache
def account_hash(password: str) -> str:
    """One hash per password per test process (salted once; the accounts are test data)."""
    return hash_password(password, n=TEST_COST)
