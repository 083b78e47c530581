"""The README's examples are real: the blocks in the README are exactly examples/*.py, and
both run against a real gateway — the cookie one as is, the OAuth one with its two
interactive steps (opening a browser, catching the redirect) done headless."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.headless import headless_authorize
from tests.support.processes import REPO, free_port

pytestmark = pytest.mark.timeout(120)

EXAMPLES = ["examples/call_with_cookie.py", "examples/call_with_oauth.py"]


@pytest.mark.parametrize("path", EXAMPLES)
def test_the_readme_shows_the_example_files_verbatim(path):
    readme = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {re.escape(path)} -->\n```python\n(.*?)```", readme, re.S)
    assert block, f"README.md has no block for {path}"
    assert block.group(1) == (REPO / path).read_text()


@pytest.fixture(scope="module")
def demo_gateway(tmp_path_factory, upstream_sse_answers):
    with run_gateway(tmp_path_factory.mktemp("gw-readme"), [server_entry("currenttime", upstream_sse_answers.url)],
                     auth={"enabled": True, "provider_type": "local"},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


@pytest.mark.parametrize("transport", ["streamable", "sse"])
def test_the_cookie_example_calls_the_tool(demo_gateway, transport):
    done = subprocess.run([sys.executable, str(REPO / "examples/call_with_cookie.py")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "GATEWAY_URL": demo_gateway.url, "ADMIN_PASSWORD": ADMIN_PASSWORD,
                                           "TRANSPORT": transport})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tools: current_time_by_timezone, countdown" in done.stdout or "tools: countdown, current_time_by_timezone" in done.stdout
    assert re.search(r"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00$", done.stdout, re.M), done.stdout


async def test_the_oauth_example_calls_the_tool(demo_gateway, monkeypatch):
    monkeypatch.setenv("GATEWAY_URL", demo_gateway.url)
    monkeypatch.setenv("CALLBACK_PORT", str(free_port()))
    spec = importlib.util.spec_from_file_location("call_with_oauth", REPO / "examples/call_with_oauth.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    landed: list[httpx.URL] = []

    async with httpx.AsyncClient(timeout=15) as browser:
        async def sign_in_headless(authorization_url: str) -> None:
            # what the person does in the browser: the gateway's sign-in form, then "Allow"
            landed.append(await headless_authorize(browser, authorization_url, "admin", ADMIN_PASSWORD,
                                                   stop_at_prefix=example.REDIRECT_URI, consent_action="allow"))

        async def caught_redirect():
            url = landed.pop()
            return example.AuthorizationCodeResult(code=url.params["code"], state=url.params.get("state"),
                                                   iss=url.params.get("iss"))

        text = await example.main(redirect_handler=sign_in_headless, callback_handler=caught_redirect)
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", text)


def test_the_readme_run_command_starts_a_gateway_you_can_sign_in_to(tmp_path):
    """scripts/demo, as the README says to run it — pointed at free ports."""
    import tomli_w

    from tests.support.processes import Process, wait_for_port

    port, demo_port = free_port(), free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(tomli_w.dumps({
        "gateway": {"listen_host": "127.0.0.1", "listen_port": port, "public_url": f"http://127.0.0.1:{port}",
                    "state_dir": str(tmp_path / "var"), "policy_dir": str(REPO / "policies")},
        "auth": {"enabled": True, "provider_type": "local"},
        "servers": [{"name": "currenttime", "url": f"http://127.0.0.1:{demo_port}"}],
    }))
    env = {"MCP_GATEWAY_CONFIG": str(config), "DEMO_SERVER_PORT": str(demo_port),
           "MCP_DEMO_SECRETS": str(tmp_path / "secrets.env"), "HOME": str(tmp_path)}
    for name in ("SECRET_KEY", "ADMIN_USER", "ADMIN_PASSWORD"):
        env[name] = ""
    demo = Process([str(REPO / "scripts/demo")], tmp_path / "demo.log", env=env)
    try:
        wait_for_port(port, demo.proc, timeout=60, log=tmp_path / "demo.log")
        wait_for_port(demo_port, demo.proc, timeout=30, log=tmp_path / "demo.log")
        # the example signs in at once: wait for the login app the gateway starts, as a person would
        wait_for_login_app(SimpleNamespace(url=f"http://127.0.0.1:{port}", log=demo.output), timeout=60)
        password = re.search(r"as admin / (\S+)", demo.output).group(1)
        assert f"ADMIN_PASSWORD={password}" in (tmp_path / "secrets.env").read_text()
        done = subprocess.run([sys.executable, str(REPO / "examples/call_with_cookie.py")], capture_output=True,
                              text=True, timeout=60,
                              env={**os.environ, "GATEWAY_URL": f"http://127.0.0.1:{port}", "ADMIN_PASSWORD": password})
        assert done.returncode == 0, done.stderr[-2000:] + demo.output[-3000:]
        assert re.search(r"\+0[12]:00$", done.stdout.strip())
    finally:
        demo.stop()


# -- mcp_gateway.client, the helper the examples use ------------------------------------------------------


@pytest.mark.parametrize("transport", ["streamable", "sse"])
async def test_the_client_helper_with_a_given_cookie_on_both_transports(demo_gateway, transport):
    from mcp_gateway.client import GatewayClient
    from tests.support.login import login_local

    gateway = GatewayClient(demo_gateway.url, cookie=login_local(demo_gateway.url, "admin", ADMIN_PASSWORD))
    result = await gateway.call_tool("currenttime", "current_time_by_timezone", {"timezone": "Europe/Berlin"},
                                     transport=transport)
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", result.content[0].text)
    assert "mcp_gateway_session" not in repr(gateway)


async def test_the_client_helper_says_why_a_sign_in_failed(demo_gateway):
    from mcp_gateway.client import GatewayClient, SignInFailed

    with pytest.raises(SignInFailed, match="refused: HTTP 401"):
        await GatewayClient.sign_in(demo_gateway.url, "admin", "not-the-password")


@pytest.mark.parametrize("server,transport", [("../registry", "sse"), ("a/b", "streamable"), ("", "sse"),
                                              ("currenttime", "websocket"), ("CurrentTime", "streamable")])
def test_the_client_helper_refuses_what_is_not_a_server_or_transport(server, transport):
    from mcp_gateway.client import GatewayClient

    with pytest.raises(ValueError):
        GatewayClient("http://localhost:7860", bearer_token="t").url(server, transport)


def test_the_client_helper_sends_exactly_one_credential():
    from mcp_gateway.client import GatewayClient

    assert GatewayClient("http://gw", bearer_token="tok").headers == {"authorization": "Bearer tok"}
    assert GatewayClient("http://gw", cookie="c").headers == {"cookie": "mcp_gateway_session=c"}
    with pytest.raises(ValueError):
        GatewayClient("http://gw", cookie="c", bearer_token="tok")
