"""Server definition files through a real gateway (docs/registry-files.md): a server from a
file answers the mcp SDK's client, a file added at run time becomes reachable, the state file
disables, a registry API toggle is written back, a bad file is logged and ignored."""

from __future__ import annotations

import json
import httpx
import pytest

from tests.support.gateway import run_gateway, server_entry
from tests.support.waiting import wait_until
from tests.support.mcp_clients import ACCEPT, INIT, session_for

pytestmark = pytest.mark.timeout(120)

STATE = "server_state.json"


def definition(path: str, url: str, **extra) -> str:
    return json.dumps({"server_name": f"{path} server", "path": path, "proxy_pass_url": url + "/",
                       "description": "from a file", "tags": ["t"], "tool_list": [], "num_tools": 2, **extra})


@pytest.fixture(scope="module")
def files_gateway(tmp_path_factory, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("gw-files")
    folder = tmp / "registry" / "servers"   # the default servers_dir, beside gateway.toml
    folder.mkdir(parents=True)
    (folder / "currenttime.json").write_text(definition("/currenttime", upstream_sse_answers.url))
    (folder / "parked.json").write_text(definition("/parked", upstream_sse_answers.url))
    (folder / "broken.json").write_text("{ not json")
    (folder / STATE).write_text(json.dumps({"/currenttime": True, "/parked": False}))
    with run_gateway(tmp, [server_entry("declared", upstream_sse_answers.url)],
                     env={"MCP_AUTH_ENABLED": "false"}) as gw:
        gw.folder = folder
        yield gw


@pytest.mark.parametrize("transport", ["sse", "streamable"])
async def test_a_server_from_a_file_answers_through_the_gateway(files_gateway, transport):
    url = files_gateway.sse_url("currenttime") if transport == "sse" else files_gateway.streamable_url("currenttime")
    async with session_for(transport)(url) as client:
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
    assert result.content[0].text.endswith("+00:00")


def test_a_file_added_at_run_time_becomes_reachable_and_a_deleted_one_goes(files_gateway):
    url = f"{files_gateway.url}/api/servers/latecomer"
    assert httpx.get(url, timeout=10).status_code == 404
    upstream = httpx.get(f"{files_gateway.url}/api/servers/currenttime", timeout=10).json()["url"]
    (files_gateway.folder / "latecomer.json").write_text(definition("/latecomer", upstream))
    wait_until(lambda: httpx.get(url, timeout=10).status_code == 200, message="the new file")
    entry = httpx.get(url, timeout=10).json()
    assert entry["enabled"] is True and entry["description"] == "from a file"
    initialized = httpx.post(files_gateway.streamable_url("latecomer"), json=INIT, headers=ACCEPT, timeout=10)
    assert initialized.status_code == 200 and "serverInfo" in initialized.text  # reached the upstream
    (files_gateway.folder / "latecomer.json").unlink()
    wait_until(lambda: httpx.get(url, timeout=10).status_code == 404, message="the deleted file to go")


def test_server_state_false_answers_503(files_gateway):
    response = httpx.post(files_gateway.streamable_url("parked"), json={}, timeout=10)
    assert response.status_code == 503 and "disabled" in response.text


def test_a_toggle_through_the_registry_api_is_written_to_server_state_json(files_gateway):
    state = files_gateway.folder / STATE
    toggled = httpx.post(f"{files_gateway.url}/api/servers/parked/toggle", json={"enabled": True}, timeout=10)
    assert toggled.status_code == 200 and toggled.json()["enabled"] is True
    assert json.loads(state.read_text()) == {"/currenttime": True, "/parked": True}
    edited = httpx.put(f"{files_gateway.url}/api/servers/parked", json={"description": "edited"}, timeout=10)
    assert edited.status_code == 200
    document = json.loads((files_gateway.folder / "parked.json").read_text())
    assert document["description"] == "edited" and document["tags"] == ["t"] and document["num_tools"] == 2
    httpx.post(f"{files_gateway.url}/api/servers/parked/toggle", json={"enabled": False}, timeout=10)
    assert json.loads(state.read_text())["/parked"] is False
    assert not (files_gateway.state_dir / "registry.toml").exists()


def test_an_edit_of_the_state_file_by_hand_applies_without_a_restart(files_gateway):
    state = files_gateway.folder / STATE
    url = f"{files_gateway.url}/api/servers/currenttime"
    state.write_text(json.dumps({"/currenttime": False, "/parked": False}))
    wait_until(lambda: httpx.get(url, timeout=10).json()["enabled"] is False, message="the state file to apply")
    assert httpx.post(files_gateway.streamable_url("currenttime"), json={}, timeout=10).status_code == 503
    state.write_text(json.dumps({"/currenttime": True, "/parked": False}))
    wait_until(lambda: httpx.get(url, timeout=10).json()["enabled"] is True, message="the state file to apply again")


def test_a_bad_file_is_logged_by_name_and_the_others_keep_working(files_gateway):
    assert "broken.json: not valid JSON" in files_gateway.log
    names = {s["name"] for s in httpx.get(f"{files_gateway.url}/api/servers", timeout=10).json()["servers"]}
    assert {"declared", "currenttime", "parked"} <= names and "broken" not in names
