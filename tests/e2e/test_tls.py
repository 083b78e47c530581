"""TLS settings are applied (addons/upstream_tls.py, addons/settings.py): an https upstream
signed by a private CA is refused without its `ca_file` and reached with it; `verify_tls =
false` reaches it and warns at start; a TLS listener serves from `tls_cert` + `tls_key`.
Certificates come from a CA made at run time (tests/support/private_ca.py)."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from tests.support.gateway import run_gateway, server_entry
from tests.support.launcher import run_launcher
from tests.support.mcp_clients import ACCEPT
from tests.support.private_ca import make_private_ca
from tests.support.recorder import recording_upstream

pytestmark = pytest.mark.timeout(120)

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def tls_servers(ca, upstreams) -> list[dict]:
    untrusted, trusted, unverified, by_name = upstreams
    return [
        server_entry("untrusted", untrusted.url),
        server_entry("trusted", trusted.url, ca_file=str(ca.ca_file)),
        server_entry("unverified", unverified.url, verify_tls=False),
        # the certificate names 127.0.0.1 and localhost only: the CA alone is not enough
        server_entry("wrong-name", by_name.url.replace("127.0.0.1", "127.0.0.2"), ca_file=str(ca.ca_file)),
    ]


def https_upstreams(stack: ExitStack, ca) -> tuple:
    return tuple(stack.enter_context(recording_upstream(ca.server_context())) for _ in range(4))


def check_upstream_tls(base: str, upstreams, verify) -> None:
    untrusted, trusted, unverified, by_name = upstreams

    def ping(server: str) -> httpx.Response:
        return httpx.post(f"{base}/api/streamable/{server}", json=PING, headers=ACCEPT, timeout=20, verify=verify)

    for refused, upstream in (("untrusted", untrusted), ("wrong-name", by_name)):
        answer = ping(refused)
        assert answer.status_code == 502, answer.text
        assert answer.headers["content-type"].startswith("application/json") and answer.json()["message"]
        assert not upstream.requests, "a request reached an upstream whose certificate failed verification"
    for allowed, upstream in (("trusted", trusted), ("unverified", unverified)):
        answer = ping(allowed)
        assert answer.status_code == 200, answer.text
        assert upstream.requests and upstream.requests[-1].body


def test_upstream_tls_and_a_listener_with_a_separate_key(tmp_path):
    ca = make_private_ca(tmp_path / "ca")
    with ExitStack() as stack:
        upstreams = https_upstreams(stack, ca)
        gateway = {"tls_cert": str(ca.cert_file), "tls_key": str(ca.key_file)}
        with run_gateway(tmp_path, tls_servers(ca, upstreams), gateway=gateway,
                         env={"MCP_AUTH_ENABLED": "false"}) as gw:
            base = f"https://127.0.0.1:{gw.port}"
            health = httpx.get(f"{base}/healthz", verify=str(ca.ca_file), timeout=20)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            with pytest.raises(httpx.ConnectError):  # the listener speaks TLS only, with the configured certificate
                httpx.get(f"{base}/healthz", timeout=20)
            check_upstream_tls(base, upstreams, str(ca.ca_file))
            warnings = [line for line in gw.log.splitlines() if "verify_tls = false" in line]
            assert len(warnings) == 1 and "unverified" in warnings[0], gw.log
            listener_pem = gw.state_dir / "mitmproxy" / "listener.pem"
            assert listener_pem.stat().st_mode & 0o077 == 0


def test_upstream_tls_under_the_launcher(tmp_path):
    # The launcher orders mitmproxy's TLS addon after the gateway's chain; mitmdump before it.
    ca = make_private_ca(tmp_path / "ca")
    with ExitStack() as stack:
        upstreams = https_upstreams(stack, ca)
        with run_launcher(tmp_path / "run", tls_servers(ca, upstreams), env={"MCP_AUTH_ENABLED": "false"}) as gw:
            check_upstream_tls(gw.url, upstreams, True)
