"""`mitmweb -s addons/gateway.py` is the same gateway with mitmproxy's web UI, where every
flow carries the gateway's decision as a comment and refusals are marked."""

from __future__ import annotations


import httpx
import pytest

from tests.support.gateway import mitmdump_args, server_entry, write_config
from tests.support.processes import free_port, running, wait_for_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

WEB_PASSWORD = "web-ui-password-for-tests"


def test_mitmweb_shows_the_decision_on_every_flow(tmp_path, upstream_sse_answers):
    port, web_port = free_port(), free_port()
    config = write_config(tmp_path, port, [server_entry("currenttime", upstream_sse_answers.url)])
    args = mitmdump_args(config, tool="mitmweb") + [
        "--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1", "--set", "web_open_browser=false",
        "--set", f"web_password={WEB_PASSWORD}"]
    with running(args, tmp_path / "mitmweb.log", port=port, env={"HOME": str(tmp_path), "MCP_AUTH_ENABLED": "false"}):
        wait_for_port(web_port)
        assert httpx.get(f"http://127.0.0.1:{port}/api/execute/nope/sse", timeout=10).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        flows = wait_until(lambda: (listed := httpx.get(f"http://127.0.0.1:{web_port}/flows",
                                                        params={"token": WEB_PASSWORD}, timeout=10).json())
                           and len(listed) >= 2 and listed, 10, "mitmweb lists both flows")
    by_path = {flow["request"]["path"]: flow for flow in flows}
    refused = by_path["/api/execute/nope/sse"]
    assert refused["comment"].startswith("refused") and "404" in refused["comment"]
    assert refused["marked"]
    assert by_path["/healthz"]["comment"].startswith("allowed") and not by_path["/healthz"]["marked"]
