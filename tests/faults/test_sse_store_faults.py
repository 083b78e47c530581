"""An SSE stream whose owner the session store cannot record is never handed out unbound: with
the store unable to write when the stream opens, the stream is refused (503, JSON); if the record
fails as the endpoint event passes, the stream is cut and its session is unknown to the gateway,
so nobody — not even whoever posts to it first — can use it. Bearer JWTs identify the caller here,
so identifying needs no store and the stream itself is what meets the fault."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from contextlib import contextmanager

import httpx
import pytest

from tests.faults.conftest import ADMIN_ENV
from tests.support.gateway import run_gateway, server_entry
from tests.support.jwks_server import JwksServer, SigningKey, token_claims
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)

ISSUER = "https://idp.sse-faults.test"
CLIENT_ID = "gateway-client"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
SQLITE_BUSY_TIMEOUT = 5.0


@pytest.fixture
def jwt_gateway(tmp_path, upstream_sse_answers):
    with _jwt_gateway(tmp_path, upstream_sse_answers) as running:
        yield running


@contextmanager
def _jwt_gateway(tmp_path, upstream, session=None):
    key = SigningKey.rsa("k1")
    auth = {"enabled": True, "provider_type": "generic", "generic": {
        "client_id": CLIENT_ID, "issuer": ISSUER, "authorize_url": f"{ISSUER}/authorize",
        "token_url": f"{ISSUER}/token"}}
    with JwksServer() as jwks:
        jwks.publish(key)
        auth["generic"]["jwks_url"] = jwks.url
        flag = tmp_path / "fail-sse-records"
        with run_gateway(tmp_path, [server_entry("currenttime", upstream.url)], auth=auth, session=session,
                         extra_scripts=["tests/support/sse_record_faults.py"],
                         env={**ADMIN_ENV, "MCP_AUTH_CLIENT_SECRET": "s", "MCP_TEST_SSE_RECORD_FAULT": str(flag)}) as gw:
            token = key.sign(token_claims(ISSUER, CLIENT_ID, sub="sse-user", groups=["mcp-admin"]))
            other = key.sign(token_claims(ISSUER, CLIENT_ID, sub="someone-else", groups=["mcp-admin"]))
            yield gw, {"authorization": f"Bearer {token}"}, {"authorization": f"Bearer {other}"}, flag


def test_a_stream_is_refused_while_the_store_cannot_record_its_owner(jwt_gateway):
    gw, headers, _, _ = jwt_gateway
    lock = sqlite3.connect(gw.state_dir / "sessions.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with httpx.Client(timeout=SQLITE_BUSY_TIMEOUT + 15) as http:
            with http.stream("GET", gw.sse_url("currenttime"), headers=headers) as stream:
                assert stream.status_code == 503
                assert stream.headers["content-type"] == "application/json"
                body = stream.read()
        assert b"endpoint" not in body and b"session_id" not in body
        assert time.monotonic() - started < SQLITE_BUSY_TIMEOUT + 10
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    with httpx.Client(timeout=10) as http:  # the store is back: streams open again, and work
        with http.stream("GET", gw.sse_url("currenttime"), headers=headers) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
            assert http.post(f"{gw.url}{endpoint}", json=INIT, headers=headers).status_code == 202


def test_a_stream_whose_record_fails_is_cut_and_its_session_is_usable_by_nobody(jwt_gateway):
    gw, headers, other, flag = jwt_gateway
    flag.touch()
    try:
        with httpx.Client(timeout=15) as http:
            with http.stream("GET", gw.sse_url("currenttime"), headers=headers) as stream:
                lines = stream.iter_lines()
                endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
                started = time.monotonic()
                try:
                    for _ in lines:  # the stream ends: the gateway cut it
                        assert time.monotonic() - started < 10, "the unrecorded stream stayed open"
                except httpx.HTTPError:
                    pass
                assert time.monotonic() - started < 10
        for who in (other, headers):  # whoever posts first, the owner too: the session is not bound to anyone
            answer = httpx.post(f"{gw.url}{endpoint}", json=INIT, headers=who, timeout=10)
            assert answer.status_code == 404, answer.text
        assert "could not be recorded" in gw.log
    finally:
        flag.unlink()


def test_a_stream_is_refused_while_redis_does_not_answer(tmp_path, upstream_sse_answers):
    with RedisServer(tmp_path / "redis") as redis, \
            _jwt_gateway(tmp_path, upstream_sse_answers, session={"store": redis.url}) as (gw, headers, _, _):
        assert redis.process is not None
        os.kill(redis.process.pid, signal.SIGSTOP)  # up but not answering: every store call times out
        try:
            started = time.monotonic()
            with httpx.Client(timeout=30) as http:
                with http.stream("GET", gw.sse_url("currenttime"), headers=headers) as stream:
                    assert stream.status_code == 503
                    assert b"session_id" not in stream.read()
            assert time.monotonic() - started < 15
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        with httpx.Client(timeout=10) as http:
            with http.stream("GET", gw.sse_url("currenttime"), headers=headers) as stream:
                lines = stream.iter_lines()
                endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
                assert http.post(f"{gw.url}{endpoint}", json=INIT, headers=headers).status_code == 202
