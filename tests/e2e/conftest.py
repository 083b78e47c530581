"""Shared real processes for the end-to-end tests: upstream MCP servers built with the
`mcp` SDK, and the gateway (`mitmdump -s addons/gateway.py`) in front of them."""

from __future__ import annotations

import pytest

from tests.support.gateway import run_gateway, server_entry
from tests.support.login import wait_for_login_app  # noqa: F401  (imported from here by many tests)
from tests.support.processes import free_port
from tests.support.recorder import recording_upstream
from tests.support.upstreams import mcp_upstream


@pytest.fixture(scope="session")
def upstream_sse_answers(tmp_path_factory):
    with mcp_upstream(tmp_path_factory.mktemp("up-sse"), name="currenttime") as upstream:
        yield upstream


@pytest.fixture(scope="session")
def upstream_json_answers(tmp_path_factory):
    with mcp_upstream(tmp_path_factory.mktemp("up-json"), name="currenttime-json", json_response=True) as upstream:
        yield upstream


@pytest.fixture(scope="session")
def upstream_foo(tmp_path_factory):
    with mcp_upstream(tmp_path_factory.mktemp("up-foo"), name="foo") as upstream:
        yield upstream


@pytest.fixture(scope="session")
def recorder():
    with recording_upstream() as rec:
        yield rec


@pytest.fixture(scope="session")
def open_gateway(tmp_path_factory, upstream_sse_answers, upstream_json_answers, upstream_foo, recorder):
    """A gateway with authentication off (MCP_AUTH_ENABLED=false): the data plane alone."""
    servers = [
        server_entry("currenttime", upstream_sse_answers.url),
        server_entry("currenttime-json", upstream_json_answers.url),
        server_entry("foo", upstream_foo.url),
        server_entry("foobar", upstream_sse_answers.url),
        server_entry("off", upstream_sse_answers.url, enabled=False),
        server_entry("down", f"http://127.0.0.1:{free_port()}"),
        server_entry("recorder", recorder.url),
    ]
    with run_gateway(tmp_path_factory.mktemp("gw-open"), servers, extra_scripts=["tests/support/faults.py"],
                     env={"MCP_AUTH_ENABLED": "false"}) as gw:
        yield gw


ADMIN_PASSWORD = "admin-password-for-tests"
BOB_PASSWORD = "bob-password-for-tests"
DANA_PASSWORD = "dana-password-for-tests"
# Local accounts of the authenticated gateways, one per row of the scope table they exercise.
ACCOUNTS = {
    "bob": (BOB_PASSWORD, ["mcp-user"]),                                   # registry read only
    "dana": (DANA_PASSWORD, ["mcp-server-currenttime"]),                   # read + execute on currenttime
    "tina": ("tina-password-for-tests", ["mcp-server-currenttime-tool-current_time_by_timezone",
                                         "mcp-server-currenttime-json-tool-current_time_by_timezone"]),
    "rita": ("rita-password-for-tests", ["reader-currenttime"]),           # server read only (policies/ in tests)
    "otto": ("otto-password-for-tests", ["mcp-server-recorder-toggle"]),
    "eddy": ("eddy-password-for-tests", ["mcp-server-recorder-edit"]),
}


def local_accounts() -> dict:
    from tests.support.accounts import account_hash
    return {"accounts": [{"username": name, "password_hash": account_hash(password), "groups": groups}
                         for name, (password, groups) in ACCOUNTS.items()]}


@pytest.fixture(scope="session")
def auth_gateway(tmp_path_factory, upstream_sse_answers, upstream_json_answers, recorder):
    """A gateway with local accounts: admin (ADMIN_USER/ADMIN_PASSWORD, group mcp-admin) and bob (mcp-user)."""
    servers = [
        server_entry("currenttime", upstream_sse_answers.url),
        server_entry("currenttime-json", upstream_json_answers.url),
        server_entry("recorder", recorder.url),
    ]
    tmp = tmp_path_factory.mktemp("gw-auth")
    with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                     gateway={"policy_dir": str(test_policy_dir(tmp))},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


def test_policy_dir(tmp) -> "Path":
    """The shipped default policy plus one explicit mapping the tests need."""
    import shutil
    from pathlib import Path

    from tests.support.processes import REPO
    directory = Path(tmp) / "policies"
    directory.mkdir(exist_ok=True)
    shutil.copy(REPO / "policies" / "default.toml", directory / "default.toml")
    (directory / "50-tests.toml").write_text('[groups]\n"reader-currenttime" = ["mcp:server:currenttime:read"]\n')
    return directory


test_policy_dir.__test__ = False  # a helper, not a test
