"""The real gateway of the end-to-end tests (local accounts, `mitmdump -s addons/gateway.py`)
and the upstreams behind it, shared by every hostile-input suite in this folder: one gateway
for the whole folder keeps the suite fast. Suites that change the gateway's state start their
own (tests/faults)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures)
    ACCOUNTS,
    ADMIN_PASSWORD,
    auth_gateway,
    recorder,
    upstream_json_answers,
    upstream_sse_answers,
)
from tests.support.login import login_local


@pytest.fixture(scope="session")
def signed_in(auth_gateway) -> dict[str, str]:
    """A session token per user (admin: mcp-admin, bob: mcp-user, dana: mcp-server-currenttime,
    rita: currenttime read only). Shared: a test that ends a session must sign in itself."""
    passwords = {"admin": ADMIN_PASSWORD, **{name: password for name, (password, _) in ACCOUNTS.items()}}
    return {user: login_local(auth_gateway.url, user, passwords[user]) for user in ("admin", "bob", "dana", "rita")}
