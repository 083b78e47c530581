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
from tests.support.login import cookie_header, login_local
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
