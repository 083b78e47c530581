"""Probes of the gateway's operational surfaces and limits (rate limits, login throttling,
/healthz, metrics) from outside, with hostile variants: who may make the gateway keep state
for them, and can one caller's traffic lock out another or escape its own limit?"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from mcp_gateway.config import RateLimitsConfig
from mcp_gateway.rate_limits import KEY_PREFIX, MAX_MEMORY_BUCKETS, MemoryRateLimiter, capacity_of
from tests.e2e.conftest import DANA_PASSWORD, local_accounts, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_app_url, login_local
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

MCP_ACCEPT = {"accept": "application/json, text/event-stream"}
PING = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory, upstream_sse_answers):
    """Sign-in on, sessions and rate limits in a real Redis (whose keys the tests can count)."""
    tmp = tmp_path_factory.mktemp("gw-ops-probe")
    servers = [server_entry("currenttime", upstream_sse_answers.url), server_entry("clock", upstream_sse_answers.url),
               server_entry("off", upstream_sse_answers.url, enabled=False)]
    with RedisServer(tmp / "redis") as store, run_gateway(
            tmp, servers, auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
            session={"store": store.url}, gateway={"policy_dir": str(test_policy_dir(tmp))},
            sections={"rate_limits": {"requests_per_second": 0.2, "burst": 1, "concurrent_streams": 1}}) as gw:
        wait_for_login_app(gw)
        gw.redis = redis.Redis.from_url(store.url)
        yield gw


def rate_keys(gw) -> list[bytes]:
    return list(gw.redis.scan_iter(f"{KEY_PREFIX}*"))


# -- names that are no server make no rate-limit state -----------------------------------------

NOT_SERVERS = [  # (method, path): unknown names of every shape the router accepts, and a disabled server
    ("POST", "/api/streamable/{name}"), ("GET", "/api/streamable/{name}"), ("DELETE", "/api/streamable/{name}"),
    ("GET", "/api/execute/{name}/sse"), ("POST", "/api/execute/{name}/messages/?session_id=00"),
]
MADE_UP = ["nope", "x" * 64, "a-b_c-0", "currenttime-2", "_", "-"]


@pytest.mark.parametrize("method,template", NOT_SERVERS, ids=[f"{m} {t}" for m, t in NOT_SERVERS])
def test_names_that_are_no_server_take_no_rate_limit_bucket(limited_gateway, method, template):
    """A signed-in caller could otherwise make the gateway keep a bucket for every name it makes
    up (unbounded memory without Redis; a key per name in Redis)."""
    gw = limited_gateway
    signed_in = {**cookie_header(login_local(gw.url, "dana", DANA_PASSWORD)), **MCP_ACCEPT}
    before = set(rate_keys(gw))
    with httpx.Client(timeout=15) as client:
        for name in [*MADE_UP, "off"]:
            answer = client.request(method, gw.url + template.format(name=name), headers=signed_in,
                                    content=PING if method == "POST" else None)
            assert answer.status_code in (403, 404, 503), (name, answer.status_code, answer.text)
            assert answer.headers["content-type"].startswith("application/json")
    assert set(rate_keys(gw)) - before == set(), "rate-limit state was kept for names that are no server"


def test_signed_in_callers_are_still_limited(limited_gateway):
    gw = limited_gateway
    signed_in = {**cookie_header(login_local(gw.url, "dana", DANA_PASSWORD)), **MCP_ACCEPT,
                 "content-type": "application/json"}
    with httpx.Client(timeout=15) as client:
        statuses = [client.post(f"{gw.url}/api/streamable/currenttime", headers=signed_in, content=PING).status_code
                    for _ in range(3)]
    assert 429 in statuses, statuses
    assert rate_keys(gw), "a signed-in caller's bucket lives in Redis"


# -- the per-process limiter forgets what it can ------------------------------------------------

LIMITS = [RateLimitsConfig(requests_per_second=1000.0), RateLimitsConfig(requests_per_second=500.0, burst=5),
          RateLimitsConfig(requests_per_second=2000.0, burst=50)]


@pytest.mark.parametrize("limits", LIMITS, ids=lambda limits: f"{limits.requests_per_second:g}/s burst {limits.burst}")
def test_memory_limiter_forgets_refilled_buckets_and_keeps_refilling_ones(limits):
    """Every bucket had been taken from once, so its stored `tokens` stayed below capacity and
    none was ever forgotten: past 100 000 callers, memory grew without bound and every request
    copied the whole table (milliseconds each, on the proxy's event loop)."""
    limiter = MemoryRateLimiter(limits)
    capacity = capacity_of(limits)

    async def flood() -> None:
        for i in range(MAX_MEMORY_BUCKETS):
            await limiter.take(f"caller-{i}")

    asyncio.run(flood())
    refilled_by = time.monotonic() + capacity / limits.requests_per_second
    wait_until(lambda: time.monotonic() > refilled_by, timeout=5, message="the buckets refill")

    asyncio.run(limiter.take("busy"))  # one more caller: past the limit, the sweep runs
    assert len(limiter.buckets) <= 2, f"{len(limiter.buckets)} buckets kept after they refilled"
    assert "busy" in limiter.buckets, "a bucket still refilling must not be forgotten (its caller would start full)"


# -- the per-address login limit counts what one client can be -----------------------------------

ADDRESS_SPELLINGS = [  # (id, 20 failing attempts from, then a probe from: the same client, another spelling)
    ("ipv6 interface ids of one /64", [f"2001:db8:a::{i:x}" for i in range(1, 21)], "2001:db8:a::ffff:ffff:ffff:ffff"),
    ("ipv6 spelled out, capitals", [f"2001:0DB8:000B:0000:{i:04X}:0000:0000:0001" for i in range(1, 21)],
     "2001:db8:b::beef"),
    ("ipv4 then its ipv4-mapped ipv6", ["198.51.100.7"] * 20, "::ffff:198.51.100.7"),
    ("ipv4-mapped ipv6 then ipv4", ["::ffff:c633:6408"] * 20, "198.51.100.8"),
]
NEIGHBOURS = {  # per case: a different client, which must not be locked out
    "ipv6 interface ids of one /64": "2001:db8:a:1::1", "ipv6 spelled out, capitals": "2001:db8:b:1::1",
    "ipv4 then its ipv4-mapped ipv6": "198.51.100.70", "ipv4-mapped ipv6 then ipv4": "198.51.100.80",
}


@pytest.mark.parametrize("attempts,probe", [(a, p) for _, a, p in ADDRESS_SPELLINGS],
                         ids=[case for case, _, _ in ADDRESS_SPELLINGS])
def test_one_client_cannot_escape_the_per_address_login_limit_by_its_address_spelling(limited_gateway, request,
                                                                                       attempts, probe):
    """The login app counts failures per client address as the gateway tells it (X-Forwarded-For,
    written from the connection's peer, so sent here to the login app on loopback as the gateway
    would). An IPv6 client holds a whole /64 — 2^64 addresses — and got 20 guesses from each."""
    gw = limited_gateway
    case = request.node.callspec.id
    url = login_app_url(gw) + "/oauth/login/local"

    def guess(address: str, n: int) -> httpx.Response:
        return httpx.post(url, data={"username": f"nobody-{case}-{n}", "password": "guess"},
                          headers={"origin": gw.url, "x-forwarded-for": address}, timeout=15)

    assert [guess(address, n).status_code for n, address in enumerate(attempts)] == [401] * 20
    throttled = guess(probe, 20)
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "300", throttled.status_code
    assert guess(NEIGHBOURS[case], 21).status_code == 401, "another client was locked out"
