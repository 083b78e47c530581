"""`[servers.upstream_oauth]` is configuration only and follows the credential-source rules
(mcp_gateway/upstream_oauth_config.py): bad settings stop start-up naming the key; neither
the registry API, nor its state file, nor a server file can set or change them; the injected
token header replaces whatever the client sent and is masked in the stored flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from mitmproxy.test import tflow, tutils

from addons.upstream_oauth import TOKEN_HEADER, UpstreamOAuthTokens, _pending, inject_user_token
from mcp_gateway.config import ConfigError, load_config
from mcp_gateway.credentials import CredentialProblem
from mcp_gateway.registry import Registry, RegistryError
from mcp_gateway.registry_fields import FieldProblem, check_body

ENV = {"SECRET_KEY": "k" * 40, "MCP_AUTH_ENABLED": "true", "MCP_AUTH_PROVIDER_TYPE": "local"}


def config_with(tmp_path: Path, oauth: dict, env: dict | None = None, auth: dict | None = None):
    (tmp_path / "credentials").mkdir(exist_ok=True)
    (tmp_path / "credentials" / "secret").write_text("s3cret\n")
    document = {"gateway": {"credentials_dir": "credentials"}, "auth": auth or {},
                "servers": [{"name": "s", "url": "http://127.0.0.1:1", "upstream_oauth": oauth}]}
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps(document))
    return load_config(path, env={**ENV, **(env or {})})


@pytest.mark.parametrize("oauth, problem", [
    ({"client_id": "c", "client_secret_env": "SECRET_KEY"}, "client_secret_env: must name an environment variable"),
    ({"client_id": "c", "client_secret_env": "MCP_AUTH_CLIENT_SECRET"}, "client_secret_env: must name"),
    ({"client_id": "c", "client_secret_env": "mcp_upstream_x"}, "client_secret_env: must name"),
    ({"client_id": "c", "client_secret_file": "../gateway.toml"}, "client_secret_file: '../gateway.toml' is outside"),
    ({"client_id": "c", "client_secret_file": "/etc/passwd"}, "client_secret_file: '/etc/passwd' is outside"),
    ({"client_id": "c", "client_secret_file": "/proc/self/environ"}, "client_secret_file:"),
    ({"client_id": "c", "client_secret_env": "MCP_UPSTREAM_A", "client_secret_file": "secret"}, "not both"),
    ({"client_secret_env": "MCP_UPSTREAM_A"}, "client_id: a client secret needs a client_id"),
    ({"authorize_url": "http://a/authorize"}, "token_url: give authorize_url and token_url together"),
    ({"token_url": "http://a/token"}, "authorize_url: give authorize_url and token_url together"),
    ({"issuer": "http://a", "authorize_url": "http://a/x", "token_url": "http://a/t"}, "issuer: give issuer or"),
    ({"issuer": "ftp://a"}, "issuer:"),
    ({"token_header": "Host"}, "token_header: not a header name"),
    ({"token_header": "Cookie"}, "token_header: not a header name"),
    ({"token_header": "X-A\r\nX-B"}, "token_header: not a header name"),
    ({"token_header": "Content-Length"}, "token_header:"),
    ({"client_secret": "inline"}, "client_secret: unknown key"),
    ({"unknown": 1}, "unknown: unknown key"),
])
def test_bad_settings_stop_start_up_naming_the_key(tmp_path, oauth, problem):
    with pytest.raises(ConfigError) as raised:
        config_with(tmp_path, oauth)
    assert problem in str(raised.value)
    assert '[servers "s".upstream_oauth]' in str(raised.value)


def test_per_user_tokens_need_sign_in(tmp_path):
    with pytest.raises(ConfigError, match="per-user upstream tokens need sign-in"):
        config_with(tmp_path, {"issuer": "http://a"}, env={"MCP_AUTH_ENABLED": "false"})


def test_secret_sources_are_read_at_use(tmp_path, monkeypatch):
    from_env = config_with(tmp_path, {"client_id": "c", "client_secret_env": "MCP_UPSTREAM_S"}).servers[0]
    monkeypatch.setenv("MCP_UPSTREAM_S", "from-env")
    assert from_env.upstream_oauth.client_secret() == "from-env"
    monkeypatch.setenv("MCP_UPSTREAM_S", "two\nlines")
    with pytest.raises(CredentialProblem):
        from_env.upstream_oauth.client_secret()
    from_file = config_with(tmp_path, {"client_id": "c", "client_secret_file": "secret"}).servers[0]
    assert from_file.upstream_oauth.client_secret() == "s3cret"
    assert from_file.upstream_oauth.client_secret_file == str((tmp_path / "credentials" / "secret").resolve())


@pytest.mark.parametrize("fields", [{"upstream_oauth": {"client_id": "evil"}}, {"upstream_oauth": None},
                                    {"upstream_oauth": {}}, {"description": "x", "upstream_oauth": {"issuer": "x"}}])
def test_the_registry_api_cannot_set_it(fields):
    with pytest.raises(FieldProblem, match="configuration only"):
        check_body(fields, with_name=False)


def test_registry_edits_and_state_files_keep_the_declared_settings(tmp_path):
    config = config_with(tmp_path, {"client_id": "c", "issuer": "http://idp.example"})
    state = tmp_path / "var"
    state.mkdir()
    (state / "registry.toml").write_text(tomli_w.dumps({"servers": {
        "s": {"description": "kept", "upstream_oauth": {"client_id": "evil", "issuer": "http://evil.example"}},
        "new": {"url": "http://127.0.0.1:2", "upstream_oauth": {"issuer": "http://evil.example"}}}}))
    registry = Registry(config.servers, state, tmp_path)
    assert registry.get("s").upstream_oauth == config.servers[0].upstream_oauth
    assert registry.get("s").description == "kept"
    assert registry.get("new").upstream_oauth is None
    edited = registry.edit("s", {"description": "again"})
    assert edited.upstream_oauth == config.servers[0].upstream_oauth
    with pytest.raises(RegistryError):
        registry.edit("s", {"upstream_oauth": {"client_id": "evil"}})


@pytest.mark.parametrize("header, sent", [("Authorization", "Bearer user-token"), ("X-Service-Token", "user-token")])
def test_the_injected_header_replaces_the_clients_and_is_masked_once_forwarded(tmp_path, header, sent):
    server = config_with(tmp_path, {"issuer": "http://idp.example", "token_header": header}).servers[0]
    flow = tflow.tflow(req=tutils.treq(headers=((header.encode(), b"client-chosen"), (b"x-other", b"1"))))
    _pending[flow] = (header, server.upstream_oauth.header_value("user-token"))
    inject_user_token(flow, server, flow.request.headers)
    assert flow.request.headers.get_all(header) == [sent]
    assert "user-token" not in repr(flow.metadata)
    flow.metadata[TOKEN_HEADER] = header
    UpstreamOAuthTokens._mask(flow)
    assert flow.request.headers[header] == "***"
    # Not connected: the client's own value of the header is dropped, nothing is added.
    bare = tflow.tflow(req=tutils.treq(headers=((header.encode(), b"client-chosen"),)))
    inject_user_token(bare, server, bare.request.headers)
    assert header not in bare.request.headers
