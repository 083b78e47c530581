"""Two gateway instances, each with its own login app, sharing one Redis session store and
one state directory: what one instance decides about a session holds on the other at once.

Instance A runs as `mitmdump -s addons/gateway.py`, instance B as the production launcher
with two workers: three proxy processes, two login apps, one store. Requests to B land on
either worker, so every check below also holds between B's workers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import (
    ACCOUNTS,
    ADMIN_PASSWORD,
    BOB_PASSWORD,
    DANA_PASSWORD,
    test_policy_dir,
)
from tests.e2e.test_launcher import ACCEPT, ADMIN_ENV, INIT, LOCAL_AUTH
from tests.support.gateway import server_entry
from tests.support.launcher import mitmdump_and_launcher
from tests.support.waiting import wait_until
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import streamable_session
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)

PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def pair(tmp_path_factory, redis_store, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("pair")
    shared = {
        "servers": [server_entry("currenttime", upstream_sse_answers.url)],
        "auth": LOCAL_AUTH,
        "env": ADMIN_ENV,
        "session": {"store": redis_store.url},
        # one state dir: the registry state file is shared; sessions live in Redis
        "gateway": {"state_dir": str(tmp / "state"), "policy_dir": str(test_policy_dir(tmp))},
    }
    with mitmdump_and_launcher(tmp, **shared) as (a, b):
        yield a, b


def _post(gw, headers: dict[str, str], body: dict = INIT) -> httpx.Response:
    return httpx.post(gw.streamable_url("currenttime"), json=body, headers={**headers, **ACCEPT}, timeout=10)


async def test_a_login_on_one_instance_is_a_session_on_the_other(pair):
    a, b = pair
    headers = cookie_header(login_local(a.url, "dana", DANA_PASSWORD))
    me = httpx.get(f"{b.url}/oauth/me", headers=headers, timeout=10)
    assert me.status_code == 200 and me.json()["user"] == "dana"
    async with streamable_session(b.streamable_url("currenttime"), headers) as client:
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
        assert result.content[0].text.endswith("+00:00")


def test_logout_on_one_instance_is_refused_on_both_at_once(pair):
    a, b = pair
    headers = cookie_header(login_local(a.url, "dana", DANA_PASSWORD))
    assert _post(a, headers).status_code == 200 and _post(b, headers).status_code == 200
    out = httpx.post(f"{b.url}/oauth/logout", headers={**headers, "origin": b.url}, timeout=10)
    assert out.status_code == 200
    assert _post(a, headers).status_code == 401
    assert _post(b, headers).status_code == 401
    assert httpx.get(f"{a.url}/oauth/me", headers=headers, timeout=10).status_code == 401


def test_an_mcp_session_is_bound_to_its_owner_across_instances(pair):
    a, b = pair
    admin = cookie_header(login_local(a.url, "admin", ADMIN_PASSWORD))
    opened = _post(a, admin)
    assert opened.status_code == 200
    stolen = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    bob = cookie_header(login_local(b.url, "bob", BOB_PASSWORD))
    assert _post(b, {**bob, **stolen}, PING).status_code == 403
    assert _post(a, {**bob, **stolen}, PING).status_code == 403
    # its owner, logged in on the other instance, keeps using it (the upstream holds the session)
    admin_on_b = cookie_header(login_local(b.url, "admin", ADMIN_PASSWORD))
    assert _post(b, {**admin_on_b, **stolen}, PING).status_code == 200


def test_a_registry_change_on_one_instance_applies_on_the_other(pair):
    a, b = pair
    admin = cookie_header(login_local(a.url, "admin", ADMIN_PASSWORD))
    toggle = f"{a.url}/api/servers/currenttime/toggle"
    assert httpx.post(toggle, json={"enabled": False}, headers=admin, timeout=10).status_code == 200
    try:
        wait_until(lambda: _post(b, admin).status_code == 503, timeout=10, message="disabled on B")
    finally:
        assert httpx.post(toggle, json={"enabled": True}, headers=admin, timeout=10).status_code == 200
    # B's workers each re-read the registry state file within 1 s, and the kernel spreads new
    # connections over them: a run of answers on fresh connections means every one caught up
    # before the next test relies on the server being enabled everywhere.
    wait_until(lambda: all(_post(b, admin).status_code == 200 for _ in range(8)), timeout=10,
               message="enabled again on every worker of B")


def test_sse_answers_are_narrowed_when_the_posts_reach_another_instance(pair):
    a, b = pair
    tina = cookie_header(login_local(a.url, "tina", ACCOUNTS["tina"][0]))  # one tool of currenttime
    with httpx.Client(timeout=10) as http, http.stream("GET", a.sse_url("currenttime"), headers=tina) as stream:
        events = (line[5:] for line in stream.iter_lines() if line.startswith("data:"))
        endpoint = b.url + next(events).strip()
        assert http.post(endpoint, json={**INIT, "params": {**INIT["params"], "protocolVersion": "2024-11-05"}},
                         headers=tina).status_code == 202
        next(events)
        http.post(endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=tina)
        assert http.post(endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                         headers=tina).status_code == 202
        tools = json.loads(next(events))["result"]["tools"]
        assert [tool["name"] for tool in tools] == ["current_time_by_timezone"]
        # a refused call posted to B is answered on A's stream, with the call's own id
        assert http.post(endpoint, headers=tina, json={"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                                       "params": {"name": "countdown", "arguments": {}}}).status_code == 202
        refusal = json.loads(next(events))
        assert refusal["id"] == 3 and refusal["error"]["data"]["scope"] == "mcp:server:currenttime:tool:countdown:execute"
