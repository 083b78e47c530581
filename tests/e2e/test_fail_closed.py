"""Fail closed: a broken gateway script or configuration never lets traffic through."""

from __future__ import annotations

import httpx
import pytest

from tests.support.gateway import mitmdump_args, run_gateway, server_entry, write_config
from tests.support.processes import REPO, Process, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

GOOD_SCRIPT = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from addons.chain import build_chain
addons = build_chain()
"""


def _post(url: str) -> httpx.Response:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)


def _wait_for_status(url: str, status: int) -> httpx.Response:
    return wait_until(lambda: (response := _post(url)).status_code == status and response, 15,
                      f"{url} answers {status}")


def test_sentinel_refuses_traffic_while_the_script_is_broken(tmp_path, recorder):
    script = tmp_path / "gateway_copy.py"
    script.write_text(GOOD_SCRIPT)
    with run_gateway(tmp_path, [server_entry("recorder", recorder.url)], script=script,
                     env={"MCP_AUTH_ENABLED": "false"}) as gw:
        url = gw.streamable_url("recorder")
        assert _post(url).status_code == 200

        script.write_text(GOOD_SCRIPT + "\nthis is not python(\n")  # a broken edit, hot-reloaded by mitmproxy
        refused = _wait_for_status(url, 503)
        before = len(recorder.requests)
        assert "not loaded or not configured" in refused.json()["message"]
        for _ in range(3):
            assert _post(url).status_code == 503
        assert len(recorder.requests) == before, "traffic reached the upstream while the gateway was unloaded"

        script.write_text(GOOD_SCRIPT + "\n# fixed\n")
        _wait_for_status(url, 200)


@pytest.mark.parametrize("gateway,servers,env,expected", [
    ({"listen_port": "many"}, [], {}, "[gateway] listen_port: expected a port number"),
    ({"public_url": "ftp://x"}, [], {}, "[gateway] public_url: expected an http:// or https:// URL"),
    ({"colour": "blue"}, [], {}, "[gateway] colour: unknown key"),
    ({}, [{"name": "Bad Name", "url": "http://127.0.0.1:1"}], {}, "name: expected 1-64 characters"),
    ({}, [{"name": "x", "url": "http://user:pw@127.0.0.1:1"}], {}, "credentials in a URL are not allowed"),
    ({}, [{"name": "x"}], {}, '[servers "x"] url: missing'),
    ({}, [{"name": "x", "url": "http://127.0.0.1:1"}, {"name": "x", "url": "http://127.0.0.1:2"}], {},
     "x declared twice"),
    ({}, [{"name": "x", "url": "http://127.0.0.1:1", "upstream_header": "X-Key", "upstream_value_env": "SECRET_KEY"}],
     {}, '[servers "x"] upstream_value_env: must name an environment variable MCP_UPSTREAM_'),
    ({"credentials_dir": "."}, [{"name": "x", "url": "http://127.0.0.1:1", "upstream_header": "X-Key",
                                 "upstream_value_file": "/proc/self/environ"}], {}, "outside [gateway] credentials_dir"),
    ({}, [{"name": "x", "url": "http://127.0.0.1:1", "upstream_header": "X-Key", "upstream_value_env": "MCP_UPSTREAM_X"}],
     {"MCP_UPSTREAM_X": "k\r\nX-Injected: 1"}, "MCP_UPSTREAM_X holds a control character"),
    ({}, [], {"MCP_AUTH_PROVIDER_TYPE": "facebook"}, "MCP_AUTH_PROVIDER_TYPE ([auth] provider_type): expected one of"),
    ({}, [], {"MCP_AUTH_ENABLED": "maybe"}, "MCP_AUTH_ENABLED ([auth] enabled): expected true or false"),
    ({}, [], {"MCP_AUTH_ENABLED": "true", "SECRET_KEY": "short"}, "SECRET_KEY: too short"),
    ({}, [], {"MCP_AUTH_ENABLED": "true", "MCP_AUTH_PROVIDER_TYPE": "okta",
              "MCP_AUTH_OKTA_TENANT_URL": "https://example.okta.com", "MCP_AUTH_OKTA_CLIENT_ID": "abc"},
     "[auth.okta] client_secret: missing (set MCP_AUTH_OKTA_CLIENT_SECRET"),
])
def test_bad_configuration_stops_startup_with_one_clear_line(tmp_path, gateway, servers, env, expected):
    port = free_port()
    config = write_config(tmp_path, port, servers, gateway=gateway)
    process = Process(mitmdump_args(config), tmp_path / "gw.log",
                      env={"HOME": str(tmp_path), "SECRET_KEY": "x" * 40, "MCP_AUTH_ENABLED": "false", **env})
    try:
        code = process.wait_exit(timeout=40)
    finally:
        process.stop()
    output = process.output
    assert code != 0
    assert expected in output, output
    assert "Traceback" not in output
    error_lines = [line for line in output.splitlines() if "gateway configuration error" in line]
    assert len(error_lines) == 1, output


def test_unreadable_config_file_stops_startup(tmp_path):
    process = Process(mitmdump_args(tmp_path / "missing.toml"), tmp_path / "gw.log", env={"HOME": str(tmp_path)})
    assert process.wait_exit(timeout=40) != 0
    assert "missing.toml: file not found" in process.output
    assert "Traceback" not in process.output
