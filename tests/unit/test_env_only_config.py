"""Configuration from the environment alone, and the public URL (MCP_GATEWAY_PUBLIC_URL, else the
provider's callback URI): what the guide's container relies on (docs/container.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_gateway.config import ConfigError, load_config

SECRET = {"SECRET_KEY": "k" * 48}


def cognito(callback: str, **extra: str) -> dict[str, str]:
    return {**SECRET, "MCP_AUTH_PROVIDER_TYPE": "cognito", "MCP_AUTH_COGNITO_USER_POOL_ID": "us-east-1_Pool",
            "MCP_AUTH_COGNITO_CLIENT_ID": "app", "MCP_AUTH_COGNITO_CLIENT_SECRET": "s",
            "MCP_AUTH_COGNITO_CALLBACK_URI": callback, **extra}


@pytest.mark.parametrize("named", ["", "gateway.toml"])
def test_without_a_file_the_environment_configures_the_gateway(named: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(named, env=cognito("https://gw.example.com:8443/oauth/callback/cognito",
                                            MCP_GATEWAY_LOG_DIR="logs"))
    assert not config.from_file and config.source == tmp_path / "gateway.toml"
    assert (config.policy_dir, config.state_dir) == (tmp_path / "policies", tmp_path / "var")
    assert (config.access_log, config.audit_log) == (tmp_path / "logs/access.log", tmp_path / "logs/audit.jsonl")
    assert (config.public_url, config.secure_cookies) == ("https://gw.example.com:8443", True)
    assert config.auth.provider["callback_uri"] == "https://gw.example.com:8443/oauth/callback/cognito"


def test_a_file_named_explicitly_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "gatway.toml", env=SECRET)


@pytest.mark.parametrize("env,public_url", [
    (cognito("http://localhost:7860/oauth/callback/cognito"), "http://localhost:7860"),  # the guide's
    (cognito("https://gw.example.com/oauth/callback/cognito"), "https://gw.example.com"),
    (cognito("https://gw.example.com/oauth/callback/cognito", MCP_GATEWAY_PUBLIC_URL="https://gw.example.com"),
     "https://gw.example.com"),
    ({**SECRET, "MCP_GATEWAY_PUBLIC_URL": "https://mcp.example.com"}, "https://mcp.example.com"),  # local only
    (SECRET, "http://localhost:7860"),
], ids=["guide", "https-other-host", "both-agree", "env-only", "default"])
def test_the_public_url(env: dict[str, str], public_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("", env=env).public_url == public_url


@pytest.mark.parametrize("env,problem", [
    (cognito("https://gw.example.com/oauth/callback/cognito", MCP_GATEWAY_PUBLIC_URL="https://other.example.com"),
     "does not match the public URL"),
    (cognito("https://gw.example.com/callback"), "does not match the public URL"),
    ({**SECRET, "MCP_GATEWAY_PUBLIC_URL": "ftp://gw.example.com"}, "MCP_GATEWAY_PUBLIC_URL"),
], ids=["public-url-disagrees", "wrong-callback-path", "not-http"])
def test_a_public_url_that_cannot_work_stops_start_up(env: dict[str, str], problem: str, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=problem):
        load_config("", env=env)


def test_the_file_wins_over_the_derived_url(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\npublic_url = "https://gw.example.com"\n')
    config = load_config(path, env=cognito("https://gw.example.com/oauth/callback/cognito"))
    assert config.from_file and config.public_url == "https://gw.example.com"
