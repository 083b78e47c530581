"""Policy hot reload (both ways, and a broken edit), registry state across a restart, and
concurrent toggles — each against its own real gateway."""

from __future__ import annotations

import concurrent.futures
import tomllib

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, local_accounts, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import INIT, ACCEPT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(150)

AUTH = {"enabled": True, "provider_type": "local", "local": local_accounts()}
ADMIN_ENV = {"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}


def test_policy_edits_apply_to_existing_sessions_and_broken_edits_keep_the_last_good(tmp_path, upstream_sse_answers):
    policies = test_policy_dir(tmp_path)
    extra = policies / "60-late.toml"
    with run_gateway(tmp_path, [server_entry("currenttime", upstream_sse_answers.url)], auth=AUTH,
                     gateway={"policy_dir": str(policies)}, env=ADMIN_ENV) as gw:
        wait_for_login_app(gw)
        headers = {**cookie_header(login_local(gw.url, "bob", "bob-password-for-tests")), **ACCEPT}

        def status() -> int:
            return httpx.post(gw.streamable_url("currenttime"), json=INIT, headers=headers, timeout=10).status_code

        assert status() == 403  # mcp-user: registry read only
        extra.write_text('[groups]\n"mcp-user" = ["mcp:server:currenttime:execute"]\n')
        wait_until(lambda: status() == 200, 10, "a policy edit applies to an existing session")

        extra.write_text('[groups]\n"mcp-user" = ["not a scope"\n')  # broken: syntax error
        wait_until(lambda: "60-late.toml" in gw.log and "last good policy" in gw.log, 10, "the broken edit is reported")
        assert status() == 200, "a broken edit must keep the last good policy"

        extra.write_text("# nothing granted here any more\n")
        wait_until(lambda: status() == 403, 10, "removing a grant applies")


def test_registry_state_survives_a_restart_and_gateway_toml_is_untouched(tmp_path, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url)]
    kwargs = dict(auth=AUTH, env=ADMIN_ENV, config_dir=tmp_path / "cfg")
    with run_gateway(tmp_path, servers, **kwargs) as gw:
        wait_for_login_app(gw)
        original = gw.config_path.read_text()
        admin = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        off = httpx.post(f"{gw.url}/api/servers/currenttime/toggle", json={"enabled": False}, headers=admin,
                         timeout=10)
        assert off.status_code == 200
        added = httpx.post(f"{gw.url}/api/servers", json={"name": "later", "url": "http://127.0.0.1:9"},
                           headers=admin, timeout=10)
        assert added.status_code == 201
        port = gw.port
        assert gw.config_path.read_text() == original
        state = tomllib.loads((gw.state_dir / "registry.toml").read_text())
        assert state["servers"]["currenttime"]["enabled"] is False
    with run_gateway(tmp_path, servers, port=port, **kwargs) as gw:
        wait_for_login_app(gw)
        admin = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        assert httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**admin, **ACCEPT},
                          timeout=10).status_code == 503
        names = [s["name"] for s in httpx.get(f"{gw.url}/api/servers", headers=admin, timeout=10).json()["servers"]]
        assert names == ["currenttime", "later"]


def test_concurrent_toggles_leave_a_consistent_registry(tmp_path, upstream_sse_answers):
    servers = [server_entry(f"s{i}", upstream_sse_answers.url) for i in range(4)]
    with run_gateway(tmp_path, servers, auth=AUTH, env=ADMIN_ENV) as gw:
        wait_for_login_app(gw)
        admin = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        wanted = {f"s{i}": i % 2 == 0 for i in range(4)}

        def toggle(job: tuple[str, bool]) -> int:
            name, enabled = job
            return httpx.post(f"{gw.url}/api/servers/{name}/toggle", json={"enabled": enabled}, headers=admin,
                              timeout=20).status_code

        jobs = [(name, not enabled) for name, enabled in wanted.items()] * 5 + list(wanted.items()) * 5
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(toggle, jobs[: len(jobs) // 2])) == {200}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(toggle, jobs[len(jobs) // 2:])) == {200}
        listing = httpx.get(f"{gw.url}/api/servers", headers=admin, timeout=10).json()["servers"]
        assert {s["name"]: s["enabled"] for s in listing} == wanted
        state = tomllib.loads((gw.state_dir / "registry.toml").read_text())
        assert {name: entry["enabled"] for name, entry in state["servers"].items()} == wanted
