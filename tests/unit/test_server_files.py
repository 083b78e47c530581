"""Server definition files (the registry format our users come from): parsing, the mapping
onto [[servers]], hot changes, refusals and write-back (docs/registry-files.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mcp_gateway.config import ServerConfig
from mcp_gateway.registry import Registry, RegistryError
from mcp_gateway.server_files import STATE_FILE, ServerFiles, name_from_route

# The guide's own example file, as its registry writes it (fields we ignore included).
CURRENTTIME = {
    "server_name": "Current Time API",
    "description": "A simple API that returns the current server time in various formats.",
    "path": "/currenttime",
    "proxy_pass_url": "http://currenttime-server:8000/",
    "supported_transports": ["sse"],
    "tags": ["time"],
    "num_tools": 1,
    "num_stars": 0,
    "is_python": True,
    "license": "MIT-0",
    "tool_list": [{"name": "current_time_by_timezone", "parsed_description": {"main": "Get the time."},
                   "schema": {"type": "object", "properties": {"tz_name": {"type": "string"}}}}],
}


def write(folder: Path, name: str, document) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def scanned(folder: Path, reserved=frozenset()) -> ServerFiles:
    files = ServerFiles(folder, frozenset(reserved))
    files.scan()
    return files


def test_the_guides_file_maps_onto_a_server(tmp_path):
    write(tmp_path, "currenttime.json", CURRENTTIME)
    files = scanned(tmp_path)
    server = files.servers["currenttime"].server
    assert server == ServerConfig(name="currenttime", url="http://currenttime-server:8000",
                                  description=CURRENTTIME["description"], enabled=True)


def test_server_name_is_the_description_when_there_is_none(tmp_path):
    write(tmp_path, "t.json", {**CURRENTTIME, "description": ""})
    assert scanned(tmp_path).servers["currenttime"].server.description == "Current Time API"


def test_our_extension_keys_apply(tmp_path):
    write(tmp_path, "t.json", {**CURRENTTIME, "sse_path": "/events", "streamable_path": "/rpc", "verify_tls": False})
    server = scanned(tmp_path).servers["currenttime"].server
    assert (server.sse_path, server.streamable_path, server.verify_tls) == ("/events", "/rpc", False)


@pytest.mark.parametrize("route,name", [("/currenttime", "currenttime"), ("/sre-gateway/", "sre-gateway"),
                                        ("/a_1", "a_1")])
def test_name_from_route(route, name):
    assert name_from_route(route) == name


# Every class of bad file: refused with a log line naming the file, the others unaffected.
BAD_FILES = {
    "invalid-json": "{not json",
    "not-an-object": "[1, 2]",
    "empty": "",
    "missing-server-name": {k: v for k, v in CURRENTTIME.items() if k != "server_name"} | {"path": "/a1"},
    "missing-path": {k: v for k, v in CURRENTTIME.items() if k != "path"},
    "missing-url": {k: v for k, v in CURRENTTIME.items() if k != "proxy_pass_url"} | {"path": "/a2"},
    "blank-server-name": CURRENTTIME | {"server_name": " ", "path": "/a3"},
    "name-uppercase": CURRENTTIME | {"path": "/CurrentTime"},
    "name-traversal": CURRENTTIME | {"path": "/../etc"},
    "name-nested": CURRENTTIME | {"path": "/a/b"},
    "name-no-slash": CURRENTTIME | {"path": "currenttime2"},
    "name-empty": CURRENTTIME | {"path": "/"},
    "name-too-long": CURRENTTIME | {"path": "/" + "a" * 65},
    "name-not-a-string": CURRENTTIME | {"path": 7},
    "url-scheme": CURRENTTIME | {"path": "/a4", "proxy_pass_url": "file:///etc/passwd"},
    "url-credentials": CURRENTTIME | {"path": "/a5", "proxy_pass_url": "http://user:pw@host:1/"},
    "url-query": CURRENTTIME | {"path": "/a6", "proxy_pass_url": "http://host:1/?x=1"},
    "url-not-a-string": CURRENTTIME | {"path": "/a7", "proxy_pass_url": ["http://host"]},
    "credential-header": CURRENTTIME | {"path": "/a8", "upstream_header": "Authorization",
                                        "upstream_value_env": "MCP_UPSTREAM_X"},
    "credential-file": CURRENTTIME | {"path": "/a9", "upstream_value_file": "/etc/shadow"},
    "bad-extension": CURRENTTIME | {"path": "/b1", "sse_path": "../x"},
    "description-type": CURRENTTIME | {"path": "/b2", "description": 5},
    "not-utf8": b"\xff\xfe{}".decode("latin-1"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_with_its_name_and_the_others_keep_working(tmp_path, caplog, case):
    write(tmp_path, "good.json", CURRENTTIME | {"path": "/good"})
    bad = write(tmp_path, f"{case}.json", BAD_FILES[case])
    if case == "not-utf8":
        bad.write_bytes(b"\xff\xfe{}")
    with caplog.at_level(logging.WARNING, logger="mcp_gateway.server_files"):
        files = scanned(tmp_path)
    assert set(files.servers) == {"good"}
    assert any(str(bad) in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records), caplog.text


def test_a_duplicate_name_keeps_the_first_file_and_names_both(tmp_path, caplog):
    write(tmp_path, "a.json", CURRENTTIME | {"proxy_pass_url": "http://first:1"})
    write(tmp_path, "b.json", CURRENTTIME | {"proxy_pass_url": "http://second:1"})
    with caplog.at_level(logging.WARNING):
        files = scanned(tmp_path)
    assert files.servers["currenttime"].server.url == "http://first:1"
    assert "b.json" in caplog.text and "a.json" in caplog.text


def test_gateway_toml_wins_over_a_file_with_a_warning(tmp_path, caplog):
    write(tmp_path, "t.json", CURRENTTIME)
    with caplog.at_level(logging.WARNING):
        files = scanned(tmp_path, reserved={"currenttime"})
    assert files.servers == {}
    assert "also declared in gateway.toml" in caplog.text and "t.json" in caplog.text


def test_a_bad_file_is_logged_once_not_at_every_poll(tmp_path, caplog):
    write(tmp_path, "bad.json", "{")
    files = ServerFiles(tmp_path)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            files.scan()
    assert caplog.text.count("bad.json") == 1


def test_the_state_file_sets_the_enabled_state(tmp_path):
    write(tmp_path, "t.json", CURRENTTIME)
    write(tmp_path, "u.json", CURRENTTIME | {"path": "/other"})
    write(tmp_path, "v.json", CURRENTTIME | {"path": "/third"})
    write(tmp_path, STATE_FILE, {"/currenttime": False, "/other": "yes"})
    servers = scanned(tmp_path).servers
    # false → disabled; a value that is not a boolean → disabled; no entry → enabled.
    assert [servers[n].server.enabled for n in ("currenttime", "other", "third")] == [False, False, True]


def test_an_unreadable_state_file_disables_every_file_server_at_start(tmp_path, caplog):
    write(tmp_path, "t.json", CURRENTTIME)
    write(tmp_path, STATE_FILE, "{broken")
    with caplog.at_level(logging.WARNING):
        files = scanned(tmp_path)
    assert files.servers["currenttime"].server.enabled is False
    assert STATE_FILE in caplog.text


def test_a_state_file_broken_later_keeps_the_last_good_state(tmp_path):
    write(tmp_path, "t.json", CURRENTTIME)
    state = write(tmp_path, STATE_FILE, {"/currenttime": True})
    files = scanned(tmp_path)
    state.write_text("{broken, and longer")
    files.scan()
    assert files.servers["currenttime"].server.enabled is True


def test_files_added_edited_and_removed_are_picked_up(tmp_path):
    files = scanned(tmp_path / "servers")  # the folder does not exist yet
    assert files.servers == {}
    added = write(tmp_path / "servers", "t.json", CURRENTTIME)
    assert files.scan() and files.servers["currenttime"].server.url == "http://currenttime-server:8000"
    added.write_text(json.dumps(CURRENTTIME | {"proxy_pass_url": "http://elsewhere:9000/"}))
    assert files.scan() and files.servers["currenttime"].server.url == "http://elsewhere:9000"
    assert not files.scan()  # nothing changed: nothing re-read
    added.unlink()
    assert files.scan() and files.servers == {}


def test_temporary_and_hidden_files_are_not_servers(tmp_path):
    write(tmp_path, ".t.json.123.tmp", CURRENTTIME)
    write(tmp_path, ".hidden.json", CURRENTTIME)
    write(tmp_path, "notes.txt", "hello")
    assert scanned(tmp_path).servers == {}


# -- through the registry --------------------------------------------------------------------

def registry_with(tmp_path: Path, declared=()) -> tuple[Registry, ServerFiles, Path]:
    folder = tmp_path / "servers"
    write(folder, "currenttime.json", CURRENTTIME)
    files = scanned(folder, {s.name for s in declared})
    return Registry(tuple(declared), tmp_path / "state", tmp_path, files=files), files, folder


def test_the_registry_serves_file_servers_beside_declared_ones(tmp_path):
    registry, files, folder = registry_with(tmp_path, [ServerConfig("toml", "http://127.0.0.1:1")])
    assert {s.name for s in registry.all()} == {"toml", "currenttime"}
    write(folder, "late.json", CURRENTTIME | {"path": "/late"})
    files.scan()
    assert registry.get("late") is not None


def test_a_toggle_is_written_to_server_state_json(tmp_path):
    registry, _, folder = registry_with(tmp_path)
    assert registry.set_enabled("currenttime", False).enabled is False
    assert json.loads((folder / STATE_FILE).read_text()) == {"/currenttime": False}
    assert registry.get("currenttime").enabled is False
    assert not (tmp_path / "state" / "registry.toml").exists()  # nothing went to the state file


def test_an_edit_is_written_to_the_servers_own_file_keeping_unknown_fields(tmp_path):
    registry, _, folder = registry_with(tmp_path)
    server = registry.edit("currenttime", {"url": "http://new-host:8001", "description": "new"})
    assert (server.url, server.description) == ("http://new-host:8001", "new")
    document = json.loads((folder / "currenttime.json").read_text())
    assert document == CURRENTTIME | {"proxy_pass_url": "http://new-host:8001", "description": "new"}
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


@pytest.mark.parametrize("fields", [{"url": "ftp://x"}, {"sse_path": "relative"}, {"enabled": "maybe"}])
def test_a_bad_edit_changes_no_file(tmp_path, fields):
    registry, _, folder = registry_with(tmp_path)
    before = (folder / "currenttime.json").read_text()
    with pytest.raises(RegistryError) as refused:
        registry.edit("currenttime", fields)
    assert refused.value.status == 400
    assert (folder / "currenttime.json").read_text() == before and not (folder / STATE_FILE).exists()


def test_credentials_cannot_be_written_into_a_server_file(tmp_path):
    registry, files, folder = registry_with(tmp_path)
    before = (folder / "currenttime.json").read_text()
    from mcp_gateway.server_files import FileRefused
    with pytest.raises(FileRefused):
        files.write_back("currenttime", {"upstream_header": "Authorization", "upstream_value_env": "MCP_UPSTREAM_X"})
    assert (folder / "currenttime.json").read_text() == before


def test_deleting_a_file_server_removes_its_file_and_state(tmp_path):
    registry, _, folder = registry_with(tmp_path)
    registry.set_enabled("currenttime", True)
    registry.delete("currenttime")
    assert registry.get("currenttime") is None
    assert not (folder / "currenttime.json").exists()
    assert json.loads((folder / STATE_FILE).read_text()) == {}


def test_a_registered_server_wins_over_a_later_file_of_the_same_name(tmp_path):
    registry, files, folder = registry_with(tmp_path)
    registry.register({"name": "late", "url": "http://registered:1"})
    write(folder, "late.json", CURRENTTIME | {"path": "/late", "proxy_pass_url": "http://file:1"})
    files.scan()
    assert registry.get("late").url == "http://registered:1"
