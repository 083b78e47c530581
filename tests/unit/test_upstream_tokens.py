"""The per-user token vault (mcp_gateway/upstream_tokens.py) on every store backend: sealed at
rest, bound to its user and server, shared by instances, refreshed once however many requests
wait, and removed when the service refuses the refresh."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from mcp_gateway.secretbox import SecretBox
from mcp_gateway.upstream_oauth import GrantRefused, TokenSet, UpstreamOAuthError
from mcp_gateway.upstream_tokens import TokenVault, vault_key
from tests.unit.test_session_store import SECRET, Backend, backend  # noqa: F401  (the shared backends)

pytestmark = pytest.mark.timeout(60)

ACCESS = "upstream-access-token-PLAINTEXT-0123456789"
REFRESH = "upstream-refresh-token-PLAINTEXT-0123456789"


class FakeService:
    """Stands in for the service's token endpoint: counts refreshes, answers after a pause."""

    def __init__(self, outcome: object = None):
        self.server = SimpleNamespace(name="svc")
        self.refreshes = 0
        self.outcome = outcome

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        self.refreshes += 1
        await asyncio.sleep(0.05)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        now = time.time()
        return TokenSet(f"fresh-{self.refreshes}", "fresh-refresh", expires_at=now + 600, obtained_at=now)


def vault_on(backend: Backend) -> TokenVault:
    return TokenVault(backend.open(), SecretBox(SECRET))


def expiring(seconds: float) -> TokenSet:
    now = time.time()
    return TokenSet(ACCESS, REFRESH, expires_at=now + seconds, obtained_at=now - 600)


async def test_tokens_are_sealed_at_rest_and_shared_by_instances(backend: Backend):
    first, second = vault_on(backend), vault_on(backend)
    await first.save("local:alice", "svc", TokenSet(ACCESS, REFRESH, expires_at=time.time() + 600))
    assert (await second.get("local:alice", "svc")).access_token == ACCESS
    assert await second.get("local:bob", "svc") is None
    assert await second.get("local:alice", "other") is None
    raw = backend.dump()
    assert ACCESS.encode() not in raw and REFRESH.encode() not in raw


async def test_a_sealed_value_copied_to_another_user_does_not_open(backend: Backend):
    store = backend.open()
    vault = TokenVault(store, SecretBox(SECRET))
    await vault.save("local:alice", "svc", TokenSet(ACCESS, REFRESH))
    stolen = await store.get_value(vault_key("local:alice", "svc"))
    for owner, server in (("local:mallory", "svc"), ("local:alice", "other")):
        await store.put(vault_key(owner, server), stolen, 60)
        assert await vault.get(owner, server) is None
        assert await store.get_value(vault_key(owner, server)) is None  # forgotten, not kept around


async def test_another_secret_key_opens_nothing(backend: Backend):
    store = backend.open()
    await TokenVault(store, SecretBox(SECRET)).save("local:alice", "svc", TokenSet(ACCESS))
    assert await TokenVault(store, SecretBox("another secret key of more than 32 bytes")).get("local:alice", "svc") is None


async def test_concurrent_requests_refresh_once(backend: Backend):
    vault = vault_on(backend)
    await vault.save("local:alice", "svc", expiring(1))
    service = FakeService()
    results = await asyncio.gather(*(vault.usable("local:alice", service) for _ in range(12)))
    assert service.refreshes == 1
    assert {r.access_token for r in results} == {"fresh-1"}
    assert (await vault.get("local:alice", "svc")).refresh_token == "fresh-refresh"


async def test_a_token_not_due_is_used_as_it_is(backend: Backend):
    vault = vault_on(backend)
    await vault.save("local:alice", "svc", TokenSet(ACCESS, REFRESH, expires_at=time.time() + 600,
                                                    obtained_at=time.time()))
    service = FakeService()
    assert (await vault.usable("local:alice", service)).access_token == ACCESS
    assert service.refreshes == 0


@pytest.mark.parametrize("refused", [GrantRefused("invalid_grant"), GrantRefused("invalid_client")])
async def test_a_refused_refresh_removes_the_connection(backend: Backend, refused):
    vault = vault_on(backend)
    await vault.save("local:alice", "svc", expiring(1))
    assert await vault.usable("local:alice", FakeService(refused)) is None
    assert await vault.get("local:alice", "svc") is None


async def test_an_unreachable_service_keeps_a_valid_token_and_fails_an_expired_one(backend: Backend):
    vault = vault_on(backend)
    await vault.save("local:alice", "svc", expiring(5))  # due (inside the margin) but not expired
    down = FakeService(UpstreamOAuthError("connect timeout"))
    assert (await vault.usable("local:alice", down)).access_token == ACCESS
    await vault.save("local:alice", "svc", expiring(-1))
    with pytest.raises(UpstreamOAuthError):
        await vault.usable("local:alice", down)
    assert await vault.get("local:alice", "svc") is not None  # kept: the service may come back


async def test_an_expired_token_without_refresh_token_is_forgotten(backend: Backend):
    vault = vault_on(backend)
    now = time.time()
    await vault.save("local:alice", "svc", TokenSet(ACCESS, None, expires_at=now - 1, obtained_at=now - 60))
    assert await vault.usable("local:alice", FakeService()) is None
    assert await vault.get("local:alice", "svc") is None


async def test_forget_returns_what_was_stored_once(backend: Backend):
    vault = vault_on(backend)
    await vault.save("local:alice", "svc", TokenSet(ACCESS, REFRESH))
    assert (await vault.forget("local:alice", "svc")).refresh_token == REFRESH
    assert await vault.forget("local:alice", "svc") is None


def test_the_token_set_never_shows_its_tokens():
    assert ACCESS not in repr(TokenSet(ACCESS, REFRESH)) and REFRESH not in repr(TokenSet(ACCESS, REFRESH))
