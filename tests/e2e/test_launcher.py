"""The production launcher: a lean mitmproxy master, and N workers on one port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import httpx
import pytest
from mitmproxy.addonmanager import traverse

from addons.launcher import GatewayScript, StartupCheck, build_master
from addons.sentinel import Sentinel
from addons.settings import proxy_options
from mcp_gateway.config import load_config
from tests.e2e.conftest import ADMIN_PASSWORD, local_accounts, wait_for_login_app
from tests.support.gateway import server_entry, write_config
from tests.support.launcher import (
    children,
    command_line,
    is_running,
    launcher_args,
    run_launcher,
    wait_for_log,
    worker_pids,
)
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT, INIT, streamable_session
from tests.support.processes import REPO, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

LOCAL_AUTH = {"enabled": True, "provider_type": "local", "local": local_accounts()}
ADMIN_ENV = {"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}
MITMPROXY_BUILTINS_ALLOWED = {"Core", "DisableH2C", "Proxyserver", "NextLayer", "TlsConfig"}


def login_apps(launcher_pid: int) -> list[int]:
    return [pid for pid in children(launcher_pid) if "-m login_app" in command_line(pid)]


async def test_the_master_runs_only_the_builtins_the_gateway_needs(tmp_path):
    config = load_config(write_config(tmp_path, free_port(), [server_entry("x", "http://127.0.0.1:1")]))
    master = build_master(config)
    try:
        chain = master.addons.chain
        builtins = {type(a).__name__ for a in traverse(chain) if type(a).__module__.startswith("mitmproxy.")}
        assert builtins == MITMPROXY_BUILTINS_ALLOWED
        assert isinstance(master.addons.get("errorcheck"), StartupCheck)  # start-up errors still stop it
        assert master.addons.get("scriptloader") is None  # no reloader, no `-s`
        # the sentinel must run after the gateway's addons, as it does under mitmdump
        kinds = [type(a) for a in chain]
        assert kinds.index(Sentinel) > kinds.index(GatewayScript)
        # the listening options are set before start-up, to exactly what Settings applies
        for name, value in proxy_options(config).items():
            assert getattr(master.options, name) == value
        assert master.options.connection_strategy == "lazy"
        assert master.options.confdir == str(config.state_dir / "mitmproxy")
    finally:
        master.addons.get("errorcheck").finish()
        await master.done()


async def test_one_process_serves_the_gateway_on_its_port_directly(tmp_path, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url)]
    with run_launcher(tmp_path, servers, auth=LOCAL_AUTH, env=ADMIN_ENV) as gw:
        wait_for_login_app(gw)
        headers = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        async with streamable_session(gw.streamable_url("currenttime"), headers) as client:
            result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
            assert result.content[0].text.endswith("+00:00")
        assert httpx.post(gw.streamable_url("currenttime"), json=INIT, headers=ACCEPT, timeout=10).status_code == 401
        # one listener, bound once on the configured port: no detour through mitmproxy's default 8080
        assert re.findall(r"listening at (\S+)\.", gw.log) == [f"127.0.0.1:{gw.port}"]
        launcher = gw.process.proc
        (login_app,) = login_apps(launcher.pid)  # supervised by the gateway itself
        os.kill(launcher.pid, signal.SIGINT)
        assert launcher.wait(20) == 0
        wait_until(lambda: not is_running(login_app), timeout=5, message="login app stopped")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url)]
    with run_launcher(tmp_path_factory.mktemp("launcher-2"), servers, workers=2, auth=LOCAL_AUTH,
                      env=ADMIN_ENV) as gw:
        wait_for_login_app(gw)
        yield gw


def test_workers_share_the_port_and_one_login_app(two_workers):
    gw = two_workers
    launcher = gw.process.proc.pid
    workers = worker_pids(gw)
    assert sorted(workers) == [1, 2]
    assert set(workers.values()) | set(login_apps(launcher)) == set(children(launcher))
    assert len(login_apps(launcher)) == 1
    headers = {**cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD)), **ACCEPT}
    for _ in range(24):  # a new connection each time: the kernel picks a worker per connection
        assert httpx.post(gw.streamable_url("currenttime"), json=INIT, headers=headers, timeout=10).status_code == 200
    served = set(re.findall(r"(worker-\d) INFO mcp_gateway\.access: access allowed user=admin server=currenttime",
                            gw.log))
    assert served == {"worker-1", "worker-2"}


async def test_a_session_opened_on_one_worker_is_used_on_the_other(two_workers):
    headers = cookie_header(login_local(two_workers.url, "admin", ADMIN_PASSWORD))
    for _ in range(3):  # each SDK session uses new connections, wherever the kernel sends them
        async with streamable_session(two_workers.streamable_url("currenttime"), headers) as client:
            for _ in range(3):
                result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
                assert result.content[0].text.endswith("+00:00")


def test_a_dead_worker_is_restarted(two_workers):
    gw = two_workers
    old = worker_pids(gw)[1]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: worker_pids(gw)[1] != old, message="worker 1 restarted")
    wait_for_log(gw, "MCP Gateway listening on", count=3)
    assert f"worker 1 (pid {old}) exited with code -9; restarting" in gw.log
    new = worker_pids(gw)[1]
    assert is_running(new) and new in children(gw.process.proc.pid)
    assert httpx.get(f"{gw.url}/oauth/healthz", timeout=10).status_code == 200


def test_sigterm_to_the_launcher_stops_every_process(tmp_path, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url)]
    with run_launcher(tmp_path, servers, workers=2, auth=LOCAL_AUTH, env=ADMIN_ENV) as gw:
        wait_for_login_app(gw)
        launcher = gw.process.proc
        descendants = children(launcher.pid)
        assert len(descendants) == 3  # two workers, one login app
        os.kill(launcher.pid, signal.SIGTERM)
        assert launcher.wait(20) == 0
        wait_until(lambda: not any(is_running(pid) for pid in descendants), timeout=5, message="all stopped")
        assert "stopping 2 workers" in gw.log


def test_workers_stop_when_the_launcher_is_killed(tmp_path, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url)]
    with run_launcher(tmp_path, servers, workers=2, env={"MCP_AUTH_ENABLED": "false"}) as gw:
        workers = list(worker_pids(gw).values())
        os.kill(gw.process.proc.pid, signal.SIGKILL)
        wait_until(lambda: not any(is_running(pid) for pid in workers), timeout=10, message="orphaned workers gone")
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", gw.port)) != 0


def _run(args: list[str], tmp_path, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path), "MCP_AUTH_ENABLED": "false"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_a_bad_config_stops_start_up_with_one_line(tmp_path):
    result = _run(launcher_args(tmp_path / "missing.toml", 2), tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"mcp-gateway: configuration error: {tmp_path / 'missing.toml'}: "
                                                  "file not found"]


def test_a_taken_port_stops_start_up(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = write_config(tmp_path, port, [server_entry("x", "http://127.0.0.1:1")])
        result = _run(launcher_args(config, 2), tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_that_cannot_start_stops_the_launcher(tmp_path, workers):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "broken.toml").write_text("[groups\n")
    config = write_config(tmp_path, free_port(), [server_entry("x", "http://127.0.0.1:1")],
                          gateway={"policy_dir": str(policies)})
    result = _run(launcher_args(config, workers), tmp_path)
    assert result.returncode == 1
    assert "policy_dir" in result.stderr
    if workers > 1:
        assert "during start-up; stopping" in result.stderr
