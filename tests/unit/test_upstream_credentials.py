"""Where a server's upstream credential may come from, and what it may hold
(mcp_gateway/credentials.py): a bad source or a multi-line value stops start-up naming the
key, and a value that turns bad at run time is never sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomli_w

from addons.upstream_credentials import upstream_credential
from mcp_gateway.config import ConfigError, load_config
from mcp_gateway.registry import Registry

ENV = {"SECRET_KEY": "k" * 40, "MCP_AUTH_ENABLED": "false"}


def config_with(tmp_path: Path, server: dict, gateway: dict | None = None, env: dict | None = None):
    (tmp_path / "credentials").mkdir(exist_ok=True)
    document = {"gateway": {"credentials_dir": "credentials", **(gateway or {})},
                "servers": [{"name": "s", "url": "http://127.0.0.1:1", **server}]}
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps(document))
    return load_config(path, env={**ENV, **(env or {})})


BAD_ENV_NAMES = ["SECRET_KEY", "ADMIN_PASSWORD", "MCP_AUTH_CLIENT_SECRET", "mcp_upstream_token", "MCP_UPSTREAM",
                 "MCP_UPSTREAMTOKEN", "MCP_UPSTREAM_", "MCP_UPSTREAM_token", "MCP_UPSTREAM_A-B", " MCP_UPSTREAM_A",
                 "MCP_UPSTREAM_A\n", "PATH", "HOME"]


@pytest.mark.parametrize("name", BAD_ENV_NAMES)
def test_only_mcp_upstream_variables_may_hold_a_credential(tmp_path, name):
    with pytest.raises(ConfigError) as problem:
        config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_env": name})
    assert '[servers "s"] upstream_value_env: must name an environment variable MCP_UPSTREAM_' in str(problem.value)


def outside_files(tmp_path: Path) -> list[str]:
    (tmp_path / "outside").write_text("secret")
    (tmp_path / "credentials").mkdir(exist_ok=True)
    (tmp_path / "credentials" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "credentials" / "dirlink").symlink_to(tmp_path)
    return ["/proc/self/environ", "/etc/passwd", "../outside", "sub/../../outside", str(tmp_path / "outside"),
            "link", "dirlink/outside", ".", "", "../credentials-evil/x"]


def test_credential_files_must_lie_inside_the_credentials_folder(tmp_path):
    for value in outside_files(tmp_path):
        if not value:
            continue
        with pytest.raises(ConfigError) as problem:
            config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_file": value})
        assert '[servers "s"] upstream_value_file:' in str(problem.value), value
        assert "outside [gateway] credentials_dir" in str(problem.value), value


def test_without_a_credentials_folder_no_file_is_read(tmp_path):
    (tmp_path / "token").write_text("t")
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps({"servers": [{"name": "s", "url": "http://127.0.0.1:1", "upstream_header": "X-Key",
                                                "upstream_value_file": "token"}]}))
    with pytest.raises(ConfigError, match="upstream_value_file: set \\[gateway\\] credentials_dir"):
        load_config(path, env=ENV)


MULTI_LINE = ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rb", "a\x00b", "a\x1bb", "a\tb", "a\x7fb",
              "line1\r\nline2\r\n"]


@pytest.mark.parametrize("value", MULTI_LINE)
def test_a_credential_value_is_one_line(tmp_path, value):
    with pytest.raises(ConfigError, match="upstream_value_env: MCP_UPSTREAM_T holds a control character") as env:
        config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_env": "MCP_UPSTREAM_T"},
                    env={"MCP_UPSTREAM_T": value})
    assert value not in str(env.value)
    (tmp_path / "credentials" / "token").write_bytes(value.encode())
    with pytest.raises(ConfigError, match="upstream_value_file: holds a control character"):
        config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_file": "token"})


@pytest.mark.parametrize("header", ["X-Key\r\nX-Injected", "X Key", "Host", "content-length", "Cookie", "X:Key"])
def test_the_credential_header_is_a_plain_header_name(tmp_path, header):
    with pytest.raises(ConfigError, match="upstream_header: not a header name"):
        config_with(tmp_path, {"upstream_header": header, "upstream_value_env": "MCP_UPSTREAM_T"})


@pytest.mark.parametrize("server,problem", [
    ({"upstream_header": "X-Key"}, "upstream_header: give it together with"),
    ({"upstream_value_env": "MCP_UPSTREAM_T"}, "upstream_header: give it together with"),
    ({"upstream_header": "X-Key", "upstream_value_env": "MCP_UPSTREAM_T", "upstream_value_file": "token"},
     "not both"),
])
def test_incomplete_credential_settings_are_refused(tmp_path, server, problem):
    with pytest.raises(ConfigError, match=problem):
        config_with(tmp_path, server)


def test_good_sources_load_and_are_sent(tmp_path, monkeypatch):
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "token").write_text("Bearer from-file\n")
    from_file = config_with(tmp_path, {"upstream_header": "Authorization", "upstream_value_file": "token"}).servers[0]
    assert from_file.upstream_value_file == str((tmp_path / "credentials" / "token").resolve())
    assert upstream_credential(from_file) == "Bearer from-file"
    monkeypatch.setenv("MCP_UPSTREAM_T", " key-from-env ")
    from_env = config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_env": "MCP_UPSTREAM_T"},
                           env={"MCP_UPSTREAM_T": "key-from-env"}).servers[0]
    assert upstream_credential(from_env) == "key-from-env"


def test_a_value_that_turns_bad_at_run_time_is_not_sent(tmp_path, monkeypatch):
    token = tmp_path / "credentials" / "token"
    (tmp_path / "credentials").mkdir()
    token.write_text("first")
    server = config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_file": "token"}).servers[0]
    assert upstream_credential(server) == "first"
    token.write_text("second\r\nX-Injected: 1")
    os.utime(token, ns=(1, 1))  # a new modification time even on a coarse clock
    assert upstream_credential(server) is None
    token.unlink()
    (tmp_path / "outside").write_text("outside-secret")
    token.symlink_to(tmp_path / "outside")
    assert upstream_credential(server) is None
    monkeypatch.setenv("MCP_UPSTREAM_T", "ok")
    env_server = config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_env": "MCP_UPSTREAM_T"}).servers[0]
    monkeypatch.setenv("MCP_UPSTREAM_T", "a\nb")
    assert upstream_credential(env_server) is None


def test_the_file_is_read_again_only_when_it_changes(tmp_path, monkeypatch):
    token = tmp_path / "credentials" / "token"
    (tmp_path / "credentials").mkdir()
    token.write_text("first")
    server = config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_file": "token"}).servers[0]
    reads = []
    original = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self) or original(self, *a, **k))
    assert [upstream_credential(server) for _ in range(5)] == ["first"] * 5
    assert len(reads) <= 1
    token.write_text("second!")
    assert upstream_credential(server) == "second!"


def test_a_state_file_cannot_choose_credentials(tmp_path):
    config = config_with(tmp_path, {"upstream_header": "X-Key", "upstream_value_env": "MCP_UPSTREAM_T"})
    state = tmp_path / "var"
    state.mkdir()
    (state / "registry.toml").write_text(tomli_w.dumps({"servers": {
        "s": {"upstream_value_env": "SECRET_KEY", "upstream_header": "X-Leak", "description": "kept"},
        "new": {"url": "http://127.0.0.1:2", "upstream_header": "X-Leak", "upstream_value_file": "/proc/self/environ",
                "ca_file": "/etc/passwd"}}}))
    registry = Registry(config.servers, state, tmp_path)
    s, new = registry.get("s"), registry.get("new")
    assert (s.upstream_header, s.upstream_value_env, s.description) == ("X-Key", "MCP_UPSTREAM_T", "kept")
    assert (new.upstream_header, new.upstream_value_file, new.ca_file) == ("", "", "")
