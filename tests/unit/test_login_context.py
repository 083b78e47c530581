"""The login app's endpoints read the policy without parsing (or even stat-ing) its files on
the event loop: an edit is picked up by a thread, and requests meanwhile get the last policy."""

from __future__ import annotations

import os
import threading

import login_app.context as login_context
import mcp_gateway.policy_repository as policy_repository
from login_app.context import LoginContext
from mcp_gateway.policy_repository import PolicyRepository
from tests.support.waiting import wait_until


class Registry:
    def names(self) -> frozenset[str]:
        return frozenset({"alpha"})


def test_a_policy_edit_is_parsed_off_the_calling_thread_and_requests_meanwhile_get_the_last_policy(
        tmp_path, monkeypatch):
    policy = tmp_path / "site.toml"
    policy.write_text('[groups]\nops = ["mcp:registry:read"]\n')
    ctx = LoginContext(config=None, store=None, accounts=None, policies=PolicyRepository(tmp_path),
                       registry=Registry())
    monkeypatch.setattr(login_context, "POLICY_CHECK_SECONDS", 0.0)
    assert ctx.scopes_for(("ops",)) == ["mcp:registry:read"]

    parsing, disk_back, parsed_on = threading.Event(), threading.Event(), []
    original = policy_repository.load_policy

    def slow_load(directory):
        parsed_on.append(threading.current_thread())
        parsing.set()
        assert disk_back.wait(10)
        return original(directory)

    monkeypatch.setattr(policy_repository, "load_policy", slow_load)
    policy.write_text('[groups]\nops = ["mcp:registry:admin"]\n')
    os.utime(policy, ns=(policy.stat().st_mtime_ns + 2_000_000_000,) * 2)  # seen even on coarse clocks

    assert ctx.scopes_for(("ops",)) == ["mcp:registry:read"]  # answered at once, from the last policy
    assert parsing.wait(10)
    assert ctx.scopes_for(("ops",)) == ["mcp:registry:read"]  # while the parse is stuck, still answered
    disk_back.set()
    wait_until(lambda: ctx.scopes_for(("ops",)) == ["mcp:registry:admin"], 10, "the edit applies")
    assert parsed_on and threading.main_thread() not in parsed_on
