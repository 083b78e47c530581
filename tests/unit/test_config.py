"""Loading gateway.toml / JSON with environment overrides; every problem names its key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from mcp_gateway.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
SECRET = {"SECRET_KEY": "k" * 40}


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_gateway_toml_loads():
    config = load_config(REPO / "gateway.toml", env=SECRET)
    assert config.listen_port == 7860 and config.auth.enabled and config.auth.provider_type == "local"
    assert [s.name for s in config.servers] == ["currenttime"]
    assert config.policy_dir == REPO / "policies" and config.state_dir == REPO / "var"


def test_json_with_the_same_structure_gives_the_same_config(tmp_path):
    data = tomllib.loads((REPO / "gateway.toml").read_text())
    from_json = load_config(write(tmp_path, json.dumps(data), "gateway.json"), env=SECRET)
    (tmp_path / "policies").mkdir()
    from_toml = load_config(write(tmp_path, (REPO / "gateway.toml").read_text()), env=SECRET)
    assert from_json == from_toml.__class__(**{**from_toml.__dict__, "source": from_json.source})


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[auth]\nenabled = true\nprovider_type = "local"\n')
    config = load_config(path, env={"MCP_AUTH_ENABLED": "false", "LOGGING_LEVEL": "debug"})
    assert config.auth.enabled is False and config.logging_level == "DEBUG"


def test_generic_provider_from_environment_only(tmp_path):
    env = {**SECRET, "MCP_AUTH_PROVIDER_TYPE": "generic", "MCP_AUTH_CLIENT_ID": "gw", "MCP_AUTH_CLIENT_SECRET": "s",
           "MCP_AUTH_ISSUER": "https://idp.example.com", "MCP_AUTH_SCOPES": "openid email groups"}
    config = load_config(write(tmp_path, "[gateway]\npublic_url = \"https://gw.example.com\"\n"), env=env)
    assert config.auth.provider["issuer"] == "https://idp.example.com"
    assert config.auth.provider["scopes"] == ("openid", "email", "groups")
    assert config.auth.provider["callback_uri"] == "https://gw.example.com/oauth/callback"
    assert config.secure_cookies


def test_secrets_can_come_from_files(tmp_path):
    (tmp_path / "okta-secret").write_text("from-a-file\n")
    path = write(tmp_path, '[auth]\nprovider_type = "okta"\n[auth.okta]\ntenant_url = "https://x.okta.com"\n'
                           'client_id = "abc"\nclient_secret_file = "okta-secret"\n')
    assert load_config(path, env=SECRET).auth.provider["client_secret"] == "from-a-file"


@pytest.mark.parametrize("text,env,expected", [
    ('[gateway]\nlisten_port = 70000\n', {}, "[gateway] listen_port: expected a port number"),
    ('[gateway]\nmax_body_bytes = -1\n', {}, "[gateway] max_body_bytes: expected a positive integer"),
    ('[session]\nlifetime = "forever"\n', {}, "[session] lifetime: expected a duration"),
    ('[wat]\n', {}, "[wat]: unknown section"),
    ('[[servers]]\nname = "a"\nurl = "http://127.0.0.1:1"\nsse_path = "sse"\n', {}, "sse_path: expected an absolute path"),
    ('[[servers]]\nname = "a"\nurl = "http://127.0.0.1:1"\nsse_path = "/a/../b"\n', {}, "dot segments"),
    ('[[servers]]\nname = "a\\n"\nurl = "http://127.0.0.1:1"\n', {}, "name: expected 1-64 characters"),
    ('[[servers]]\nname = "a"\nurl = "http://127.0.0.1:1/?x=1"\n', {}, "query string or fragment"),
    ('[auth]\nprovider_type = "cognito"\n', {}, "[auth.cognito] user_pool_id: missing (or set MCP_AUTH_COGNITO_USER_POOL_ID)"),
    ('[auth]\nprovider_type = "okta"\n[auth.okta]\ntenant_url = "https://x.okta.com"\nclient_id = "a"\n'
     'callback_uri = "https://elsewhere.example/cb"\n', {"MCP_AUTH_OKTA_CLIENT_SECRET": "s"},
     "callback_uri: 'https://elsewhere.example/cb' does not match the public URL"),
    ('[auth]\nprovider_type = "generic"\n', {"MCP_AUTH_CLIENT_ID": "a", "MCP_AUTH_CLIENT_SECRET": "s"},
     "[auth.generic] issuer: missing (set MCP_AUTH_ISSUER"),
    ('[auth]\nenabled = true\n', {"SECRET_KEY": ""}, "SECRET_KEY: missing"),
    ('[auth]\n[[auth.local.accounts]]\nusername = "a"\npassword_hash = "plain"\n', {}, "not a hash made by scripts/hash-password"),
    ('', {"ADMIN_USER": "admin"}, "ADMIN_USER/ADMIN_PASSWORD: set both or neither"),
    ('', {"LOGGING_LEVEL": "LOUD"}, "LOGGING_LEVEL: expected DEBUG"),
])
def test_problems_name_the_key(tmp_path, text, env, expected):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), env={**SECRET, **env})
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_not_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"gateway.toml: not valid TOML"):
        load_config(write(tmp_path, "[gateway\n"), env=SECRET)


@pytest.mark.parametrize("store,expected", [
    ("", "{state}/sessions.db"),
    ("sqlite:///var/sessions.db", "{base}/var/sessions.db"),       # the documented example: the config's folder
    ("sqlite:////srv/gw/sessions.db", "/srv/gw/sessions.db"),
])
def test_sqlite_session_store_paths(tmp_path, store, expected):
    path = write(tmp_path, f'[gateway]\nstate_dir = "state"\n[session]\nstore = "{store}"\n')
    config = load_config(path, env=SECRET)
    wanted = expected.format(state=tmp_path / "state", base=tmp_path)
    assert config.session.store == f"sqlite:///{wanted}"


def test_redis_and_bad_store_urls(tmp_path):
    path = write(tmp_path, '[session]\nstore = "redis://127.0.0.1:6379/0"\n')
    assert load_config(path, env=SECRET).session.store == "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigError, match=r"\[session\] store: expected sqlite:///PATH or redis"):
        load_config(write(tmp_path, '[session]\nstore = "postgres://x"\n'), env=SECRET)
