"""Grants: codes, access and refresh tokens of the facade, on the real session store."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from mcp_gateway.oauth_grants import Grant, GrantError, Grants, new_family, verifier_matches
from mcp_gateway.pkce import s256_challenge
from mcp_gateway.sessions import open_store
from tests.support.facade import pkce_pair

RESOURCE = "https://gw.example/api/streamable/currenttime"


@pytest.fixture
async def store(tmp_path: Path):
    opened = open_store("sqlite:///s.db", base_dir=tmp_path, lifetime=3600, idle_timeout=3600, secretbox=None)
    yield opened
    await opened.close()


def a_grant(browser_session: str = "0" * 64, **changes) -> Grant:
    return replace(Grant(client_id="client-1", resources=(RESOURCE,), subject="u1", username="ada", provider="local",
                         groups=("mcp-user",), direct_scopes=(), email=None, browser_session=browser_session,
                         family=new_family(), expires_at=time.time() + 600), **changes)


def test_pkce_s256_verifier_check():
    verifier, challenge = pkce_pair()

    assert verifier_matches(verifier, challenge)
    assert not verifier_matches(verifier + "x", challenge)
    assert not verifier_matches(challenge, challenge)
    for malformed in ("short", "a" * 129, "ü" * 50, verifier + " "):
        assert not verifier_matches(malformed, challenge)


def test_pkce_s256_matches_rfc_7636_appendix_b():
    assert s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


async def test_a_code_redeems_once(store):
    grants = Grants(store)
    code = await grants.issue_code(a_grant(code_challenge="c" * 43, redirect_uri="https://app.example/cb"))

    grant = await grants.redeem_code(code)

    assert (grant.client_id, grant.code_challenge) == ("client-1", "c" * 43)
    assert grant.redirect_uri == "https://app.example/cb"
    with pytest.raises(GrantError):
        await grants.redeem_code(code)


async def test_codes_expire(store):
    grants = Grants(store, code_ttl=0.2)
    code = await grants.issue_code(a_grant())
    time.sleep(0.3)

    with pytest.raises(GrantError) as refused:
        await grants.redeem_code(code)
    assert refused.value.error == "invalid_grant"


async def test_access_tokens_end_with_the_grant_and_an_ended_grant_issues_nothing(store):
    grants = Grants(store)

    issued = await grants.issue_tokens(a_grant(expires_at=time.time() + 120), with_refresh_token=False)

    assert 100 < issued.expires_in <= 120 and issued.refresh_token is None
    assert issued.session.expires_at <= time.time() + 120
    with pytest.raises(GrantError):
        await grants.issue_tokens(a_grant(expires_at=time.time() - 1), with_refresh_token=True)


async def test_a_refresh_takes_the_groups_the_browser_session_has_now(store):
    _, browser = await store.create(subject="u1", username="ada", provider="local", groups=["mcp-user"])
    grants = Grants(store)
    first = await grants.issue_tokens(a_grant(browser.id), with_refresh_token=True)
    await store.update(browser.id, groups=["mcp-server-currenttime"])

    refreshed = await grants.redeem_refresh_token(first.refresh_token)
    await store.delete_by_id(browser.id)
    second = await grants.issue_tokens(refreshed, with_refresh_token=True)
    after_logout = await grants.redeem_refresh_token(second.refresh_token)

    assert refreshed.groups == ("mcp-server-currenttime",)
    assert after_logout.groups == ("mcp-server-currenttime",), "the last groups known stay until the grant ends"


async def test_revoking_a_family_ends_all_its_access_tokens(store):
    grants = Grants(store)
    grant = a_grant()
    tokens = [await grants.issue_tokens(grant, with_refresh_token=True) for _ in range(3)]

    await grants.revoke_family(grant.family)

    for issued in tokens:
        assert await store.get(issued.access_token) is None
    with pytest.raises(GrantError):
        await grants.redeem_refresh_token(tokens[-1].refresh_token)


async def test_forged_tokens_of_no_family_change_nothing(store):
    grants = Grants(store)
    issued = await grants.issue_tokens(a_grant(), with_refresh_token=True)

    for forged in ("x.y", "A" * 43, issued.refresh_token + "x", issued.access_token):
        with pytest.raises(GrantError):
            await grants.redeem_refresh_token(forged)
    assert await store.get(issued.access_token) is not None
