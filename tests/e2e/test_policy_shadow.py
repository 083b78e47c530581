"""Shadow mode on a real gateway (under mitmweb): a policy file in shadow mode that would
take a tool away leaves it callable, and its would-be refusal shows in the log, the audit
file, the metrics and mitmweb's flow comment. Then `policy replay` re-evaluates that audit
file against the tightened policy."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mcp_gateway.policy_cli import main as policy
from tests.e2e.conftest import DANA_PASSWORD, local_accounts, test_policy_dir, wait_for_login_app
from tests.e2e.test_metrics import scrape, value
from tests.support.gateway import TEST_SECRET_KEY, Gateway, mitmdump_args, server_entry, write_config
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import streamable_session
from tests.support.processes import free_port, running, wait_for_port

pytestmark = pytest.mark.timeout(120)

WEB_PASSWORD = "web-ui-password-for-tests"
TOOL = "current_time_by_timezone"
TOOL_SCOPE = f"mcp:server:currenttime:tool:{TOOL}:execute"
# The change under watch: members of mcp-server-currenttime would keep only read access
# (a tightening), readers would get execute (a loosening). Neither may change an outcome.
TIGHTENING = '[groups]\n"mcp-server-currenttime" = ["mcp:server:currenttime:read"]\n'
LOOSENING = '"reader-currenttime" = ["mcp:server:currenttime:read", "mcp:server:currenttime:execute"]\n'


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("gw-shadow")
    policies = test_policy_dir(tmp)
    (policies / "60-tighten.toml").write_text('mode = "shadow"\n\n' + TIGHTENING + LOOSENING)
    port, web_port, metrics_port = free_port(), free_port(), free_port()
    config = write_config(tmp, port, [server_entry("currenttime", upstream_sse_answers.url)],
                          auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                          gateway={"policy_dir": str(policies), "metrics_port": metrics_port})
    args = mitmdump_args(config, tool="mitmweb") + [
        "--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1", "--set", "web_open_browser=false",
        "--set", f"web_password={WEB_PASSWORD}"]
    env = {"HOME": str(tmp), "SECRET_KEY": TEST_SECRET_KEY}
    with running(args, tmp / "mitmweb.log", port=port, env=env, timeout=40) as process:
        gw = Gateway(port, config, tmp / "state", process)
        gw.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        gw.web_port = web_port
        gw.policies = policies
        wait_for_port(web_port)
        wait_for_login_app(gw)
        yield gw


def audit_records(gw, predicate, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        path = gw.state_dir / "audit.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        found = [record for record in records if predicate(record)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


async def test_a_shadow_refusal_changes_nothing_and_is_reported_everywhere(shadowed):
    gw = shadowed
    dana = cookie_header(login_local(gw.url, "dana", DANA_PASSWORD))
    async with streamable_session(gw.streamable_url("currenttime"), dana) as client:
        result = await client.call_tool(TOOL, {"timezone": "UTC"})
    assert not result.is_error and result.content  # still enforced: the policy in force allows it

    calls = audit_records(gw, lambda r: r["method"] == "tools/call" and r["user"] == "dana")
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["decision"] == "allowed" and call["status"] == 200
    assert call["shadow_decision"] == "refused" and call["shadow_scope"] == TOOL_SCOPE
    assert call["groups"] == ["mcp-server-currenttime"]
    # A record is written when its answer ends: tools/list's stream may end after the call's.
    assert audit_records(gw, lambda r: r["method"] == "tools/list" and r["user"] == "dana")
    others = audit_records(gw, lambda r: r["method"] != "tools/call" and r["user"] == "dana")
    assert {r["shadow_decision"] for r in others} == {"allowed"}  # read access stays in the shadow view

    shadow_lines = [line for line in gw.log.splitlines() if "access shadow refused" in line]
    assert len(shadow_lines) == 1, gw.log[-3000:]
    assert (f"access shadow refused (enforced: allowed) user=dana method=tools/call tool={TOOL} "
            f"scope={TOOL_SCOPE}") in shadow_lines[0]

    assert value(scrape(gw), "mcp_gateway_shadow_refusals_total", server="currenttime", tool=TOOL) == 1

    flows = httpx.get(f"http://127.0.0.1:{gw.web_port}/flows", params={"token": WEB_PASSWORD}, timeout=10).json()
    comments = [flow["comment"] for flow in flows if "tools/call" in flow["comment"]]
    assert len(comments) == 1 and comments[0].startswith("allowed · dana")
    assert comments[0].endswith(f"· shadow refused (scope {TOOL_SCOPE})")
    assert not [flow for flow in flows if "tools/call" in flow["comment"] and flow["marked"]]


async def test_a_shadow_loosening_allows_nothing(shadowed):
    gw = shadowed
    rita = cookie_header(login_local(gw.url, "rita", "rita-password-for-tests"))
    async with streamable_session(gw.streamable_url("currenttime"), rita) as client:
        assert (await client.list_tools()).tools == []  # the shadow view would show every tool
        with pytest.raises(MCPError) as refused:
            await client.call_tool(TOOL, {"timezone": "UTC"})
    assert TOOL_SCOPE in str(refused.value)
    call = audit_records(gw, lambda r: r["method"] == "tools/call" and r["user"] == "rita")[0]
    assert call["decision"] == "refused" and call["status"] == 403
    assert call["shadow_decision"] == "allowed" and call["shadow_scope"] == "mcp:server:currenttime:execute"
    assert any("access shadow allowed (enforced: refused) user=rita method=tools/call" in line
               for line in gw.log.splitlines())
    assert value(scrape(gw), "mcp_gateway_shadow_refusals_total", server="currenttime", tool=TOOL) == 1


def test_replay_the_real_audit_file_against_the_tightened_policy(shadowed, tmp_path, capsys):
    gw = shadowed
    assert audit_records(gw, lambda r: r["method"] == "tools/call"), "run after the traffic test"
    audit = tmp_path / "audit.jsonl"
    shutil.copy(gw.state_dir / "audit.jsonl", audit)
    with audit.open("a") as file:  # a record from before groups were audited
        file.write(json.dumps({"user": "old", "server": "currenttime", "method": "tools/call", "tool": TOOL,
                               "decision": "allowed", "scope": TOOL_SCOPE, "status": 200}) + "\n")

    assert policy(["replay", str(audit), "--policies", str(gw.policies)]) == 0
    unchanged = capsys.readouterr().out.splitlines()
    assert unchanged[-1].split(";")[0].endswith(", 0 would change")
    assert "1 without groups" in unchanged[-1]

    enforced = tmp_path / "policies"
    shutil.copytree(gw.policies, enforced)
    (enforced / "60-tighten.toml").write_text(TIGHTENING + LOOSENING)  # the reviewed change, now enforcing
    for argv in (["--policies", str(enforced)], ["--policies", str(gw.policies), "--shadow"]):
        assert policy(["replay", str(audit), *argv]) == 1
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 3, out
        assert out[0].endswith(f'dana ["mcp-server-currenttime"] tools/call {TOOL} on currenttime: '
                               f"allowed → refused (needs {TOOL_SCOPE})")
        assert out[1].endswith(f'rita ["reader-currenttime"] tools/call {TOOL} on currenttime: '
                               "refused → allowed (by scope mcp:server:currenttime:execute)")
        assert ", 2 would change" in out[-1]
