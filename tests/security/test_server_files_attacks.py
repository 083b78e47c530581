"""Server definition files (docs/registry-files.md) that try to reach beyond the folder: links
out of `servers_dir` (to the gateway's own environment, to a JSON file elsewhere), files that
are larger than they say, and hostile values written back by a registry edit. The real
ServerFiles and Registry on a real folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mcp_gateway.registry import Registry, RegistryError
from mcp_gateway.server_files import MAX_FILE_BYTES, FileRefused, ServerFiles, read_document


def _definition(route: str, url: str = "http://127.0.0.1:9000") -> str:
    return json.dumps({"server_name": route, "path": route, "proxy_pass_url": url})


def _scanned(folder: Path) -> ServerFiles:
    files = ServerFiles(folder)
    files.scan()
    return files


@pytest.mark.parametrize("target", ["outside.json", "/proc/self/environ", "/etc/hostname", "missing.json",
                                    "loop.json"])
def test_a_link_out_of_the_folder_is_never_read(tmp_path, caplog, target):
    folder = tmp_path / "servers"
    folder.mkdir()
    (tmp_path / "outside.json").write_text(_definition("/planted"))
    (folder / "good.json").write_text(_definition("/good"))
    link = folder / "link.json"
    destination = Path(target) if target.startswith("/") else tmp_path / target
    if target == "loop.json":
        destination = link
    link.symlink_to(destination)
    with caplog.at_level(logging.WARNING):
        files = _scanned(folder)
    assert sorted(files.servers) == ["good"]
    if target in ("outside.json", "/proc/self/environ", "/etc/hostname"):
        assert "outside servers_dir" in caplog.text


def test_a_link_inside_the_folder_is_followed_like_a_configmap(tmp_path):
    folder = tmp_path / "servers"
    (folder / "..2026_01_01").mkdir(parents=True)
    (folder / "..2026_01_01" / "cm.json").write_text(_definition("/fromconfigmap"))
    (folder / "..data").symlink_to("..2026_01_01")
    (folder / "cm.json").symlink_to("..data/cm.json")
    assert sorted(_scanned(folder).servers) == ["fromconfigmap"]


def test_a_file_larger_than_its_size_says_is_read_only_up_to_the_limit(tmp_path):
    fifo_like = Path("/proc/self/status")  # size 0 in stat(), content nonetheless: read bounded
    assert fifo_like.stat().st_size == 0
    with pytest.raises(FileRefused):
        read_document(fifo_like)  # not JSON, and never read past the limit
    big = tmp_path / "big.json"
    big.write_bytes(b'{"a": "' + b"x" * MAX_FILE_BYTES + b'"}')
    with pytest.raises(FileRefused, match="larger than"):
        read_document(big)


@pytest.mark.parametrize("fields", [
    {"sse_path": "/sse\r\nX-Injected: 1"}, {"sse_path": "//evil.example/sse"}, {"streamable_path": "mcp"},
    {"url": "file:///etc/passwd"}, {"url": "http://user:pw@127.0.0.1:9/"}, {"description": 5},
    {"upstream_value_file": "/proc/self/environ"}, {"ca_file": "/etc/shadow"}, {"name": "../etc"},
])
def test_hostile_values_are_never_written_back_to_a_server_file(tmp_path, fields):
    folder = tmp_path / "servers"
    folder.mkdir()
    file = folder / "good.json"
    file.write_text(_definition("/good"))
    before = file.read_bytes()
    files = _scanned(folder)
    registry = Registry((), tmp_path / "state", tmp_path, files=files)
    with pytest.raises(RegistryError) as refused:
        registry.edit("good", fields)
    assert refused.value.status == 400
    assert file.read_bytes() == before
    assert not any(name.startswith(".") for name in os.listdir(folder))  # no temporary file left behind
