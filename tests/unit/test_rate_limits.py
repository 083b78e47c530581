"""Rate limits: the configuration keys refuse bad values by name, and the in-memory limiter
(the per-process backend, and the reference for the Redis scripts) counts as documented."""

from __future__ import annotations

import pytest

from mcp_gateway.config import ConfigError, RateLimitsConfig, load_config
from mcp_gateway.rate_limits import Bucket, MemoryRateLimiter, capacity_of, limit_key

BAD_VALUES = [
    ("requests_per_second", "-1", "expected a number 0 or more"),
    ("requests_per_second", '"fast"', "expected a number"),
    ("requests_per_second", "true", "expected a number 0 or more"),
    ("requests_per_second", "inf", "expected a number 0 or more"),
    ("requests_per_second", "nan", "expected a number 0 or more"),
    ("burst", "-1", "expected an integer 0 or more"),
    ("burst", "1.5", "expected an integer 0 or more"),
    ("concurrent_streams", '"many"', "expected an integer 0 or more"),
    ("concurrent_streams", "[1]", "expected an integer 0 or more"),
    ("per_hour", "5", "unknown key"),
]


@pytest.mark.parametrize("key,value,problem", BAD_VALUES)
def test_bad_rate_limit_values_stop_start_up_naming_the_key(tmp_path, key, value, problem):
    path = tmp_path / "gateway.toml"
    path.write_text(f"[auth]\nenabled = false\n[rate_limits]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert f"[rate_limits] {key}" in str(error.value) and problem in str(error.value)


def test_rate_limits_are_off_by_default_and_read_from_the_file(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("[auth]\nenabled = false\n")
    assert not load_config(path, env={}).rate_limits.enabled
    path.write_text("[auth]\nenabled = false\n[rate_limits]\nrequests_per_second = 2.5\nconcurrent_streams = 3\n")
    limits = load_config(path, env={}).rate_limits
    assert limits == RateLimitsConfig(requests_per_second=2.5, burst=0, concurrent_streams=3)
    assert capacity_of(limits) == 3  # burst 0: the rate rounded up


def test_the_bucket_refills_at_the_rate_up_to_its_capacity():
    bucket = Bucket(tokens=2, updated=0.0)
    assert [bucket.take(0.0, 1.0, 2) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take(0.0, 1.0, 2) == pytest.approx(1.0)  # empty: one second to the next token
    assert bucket.take(0.5, 1.0, 2) == pytest.approx(0.5)
    assert bucket.take(100.0, 1.0, 2) == 0.0  # refilled, but never above capacity
    assert bucket.take(100.0, 1.0, 2) == 0.0
    assert bucket.take(100.0, 1.0, 2) > 0


async def test_memory_streams_are_leases_per_key():
    limiter = MemoryRateLimiter(RateLimitsConfig(concurrent_streams=2))
    a, b = limit_key("okta:alice", "s"), limit_key("okta:alice", "t")
    assert await limiter.open_stream(a, "1") and await limiter.open_stream(a, "2")
    assert not await limiter.open_stream(a, "3")
    assert await limiter.open_stream(b, "3")  # another server: its own count
    await limiter.close_stream(a, "1")
    assert await limiter.open_stream(a, "3")
    assert limit_key("a\0b", "c") != limit_key("a", "b\0c")
