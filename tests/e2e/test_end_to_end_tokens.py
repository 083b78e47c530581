"""The direct-parameter approach (docs/end-to-end-tokens.md) through real processes: the
example server and client, a gateway with a local account, a recording stand-in for GitHub.
The token reaches the service; no file the gateway writes holds it; mitmweb's stored flow
shows "***" while the upstream received the original bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, wait_for_login_app
from tests.support.gateway import mitmdump_args, run_gateway, server_entry, write_config
from tests.support.waiting import wait_until
from tests.support.processes import REPO, free_port, running, wait_for_port
from tests.support.recorder import recording_upstream

pytestmark = pytest.mark.timeout(150)

TOKEN = "ghp_E2Etoken0123456789abcdefNEVERLOGGED"
WEB_PASSWORD = "web-ui-password-for-tests"
UPSTREAM_SECRET = "upstream-credential-never-shown"


def test_the_example_passes_the_token_and_no_gateway_file_holds_it(tmp_path):
    gateway_dir, upstream_dir = tmp_path / "gateway", tmp_path / "upstream"
    upstream_dir.mkdir()
    port = free_port()
    with recording_upstream() as github, running(
            [sys.executable, str(REPO / "examples/end_to_end_tokens_server.py"), "--port", str(port)],
            upstream_dir / "server.log", port=port, env={"GITHUB_API_URL": github.url}), \
         run_gateway(gateway_dir, [server_entry("github", f"http://127.0.0.1:{port}")],
                     auth={"enabled": True, "provider_type": "local"},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD, "LOGGING_LEVEL": "DEBUG"}) as gw:
        wait_for_login_app(gw)
        done = subprocess.run([sys.executable, str(REPO / "examples/end_to_end_tokens_client.py")],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "GATEWAY_URL": gw.url, "ADMIN_PASSWORD": ADMIN_PASSWORD,
                                   "GITHUB_TOKEN": TOKEN})
        assert done.returncode == 0, done.stderr[-2000:]
        assert '"/user"' in done.stdout  # the stand-in GitHub's answer came back through the gateway
        assert [r.headers["authorization"] for r in github.requests] == [f"token {TOKEN}"]
        audit = gw.state_dir / "audit.jsonl"
        wait_until(lambda: audit.exists() and "get_github_user" in audit.read_text(), message="the tools/call audit record")
    # Every file of the gateway's run: its log (at DEBUG), the audit log, the session store,
    # the login app's and mitmproxy's files.
    written = [p for p in gateway_dir.rglob("*") if p.is_file()]
    assert audit in written and any(p.name.startswith("gateway-") for p in written)
    holding = [str(p) for p in written if TOKEN.encode() in p.read_bytes()]
    assert holding == []


def test_mitmweb_stores_masked_arguments_while_the_upstream_receives_them(tmp_path):
    port, web_port = free_port(), free_port()
    with recording_upstream() as upstream:
        config = write_config(tmp_path, port, [server_entry(
            "recorder", upstream.url, upstream_header="X-Api-Key", upstream_value_env="MCP_UPSTREAM_RECORDER")])
        args = mitmdump_args(config, tool="mitmweb") + [
            "--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1", "--set", "web_open_browser=false",
            "--set", f"web_password={WEB_PASSWORD}"]
        sent = [
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "get_github_user", "arguments": {"github_token": TOKEN, "repo": "octo/cat"}}}).encode(),
            json.dumps([{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "deploy", "arguments": {"aws": {"Secret_Access_Key": TOKEN}, "region": "eu-west-1"}}},
                {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}]).encode(),
        ]
        with running(args, tmp_path / "mitmweb.log", port=port,
                     env={"HOME": str(tmp_path), "MCP_AUTH_ENABLED": "false",
                          "MCP_UPSTREAM_RECORDER": UPSTREAM_SECRET}):
            wait_for_port(web_port)
            for body in sent:
                response = httpx.post(f"http://127.0.0.1:{port}/api/streamable/recorder", content=body, timeout=10,
                                      headers={"content-type": "application/json",
                                               "accept": "application/json, text/event-stream"})
                assert response.status_code == 200, response.text
            web = f"http://127.0.0.1:{web_port}"

            def posted() -> list[dict]:
                flows = httpx.get(f"{web}/flows", params={"token": WEB_PASSWORD}, timeout=10).json()
                return [f for f in flows if f["request"]["method"] == "POST" and f.get("response")]

            wait_until(lambda: len(posted()) >= len(sent), message="the two POST flows in mitmweb")
            flows = posted()
            stored = [httpx.get(f"{web}/flows/{f['id']}/request/content.data", params={"token": WEB_PASSWORD},
                                timeout=10).content for f in flows]
    # The upstream received exactly the bytes the client sent, token included.
    assert [r.body for r in upstream.requests] == sent
    assert [r.headers["x-api-key"] for r in upstream.requests] == [UPSTREAM_SECRET] * len(sent)
    # mitmweb keeps them masked.
    assert all(TOKEN.encode() not in body for body in stored), stored
    # ... and so is the per-server credential the forwarder added to the forwarded request.
    assert all(dict(f["request"]["headers"])["X-Api-Key"] == "***" for f in flows)
    single = next(json.loads(b) for b in stored if b.startswith(b"{"))
    batch = next(json.loads(b) for b in stored if b.startswith(b"["))
    assert single["params"]["arguments"] == {"github_token": "***", "repo": "octo/cat"}
    assert batch[0]["params"]["arguments"] == {"aws": {"Secret_Access_Key": "***"}, "region": "eu-west-1"}
