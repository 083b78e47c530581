"""The cookies the login app sets carry exactly the attributes docs/architecture.md ("Identity") gives."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from login_app.cookies import clear_session_cookie, set_session_cookie
from login_app.transaction import set_transaction_cookie
from mcp_gateway.config import load_config

SECRET = {"SECRET_KEY": "k" * 40}


def config_with(tmp_path, public_url: str):
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\npublic_url = "{public_url}"\n[auth]\nprovider_type = "local"\n')
    return load_config(path, env=SECRET)


def attributes(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts[1:]}


@pytest.mark.parametrize("public_url,secure", [("https://gw.example.com", True), ("http://localhost:7860", False)])
def test_session_cookie(tmp_path, public_url, secure):
    response = Response()
    set_session_cookie(response, config_with(tmp_path, public_url), "token-value")
    header = response.headers["set-cookie"]
    assert header.startswith("mcp_gateway_session=token-value;")
    attrs = attributes(header)
    assert "httponly" in attrs and attrs["samesite"].lower() == "lax" and attrs["path"] == "/"
    assert ("secure" in attrs) is secure
    assert "domain" not in attrs  # host-only: never shared with sibling hosts


@pytest.mark.parametrize("public_url,secure", [("https://gw.example.com", True), ("http://localhost:7860", False)])
def test_login_transaction_cookie(tmp_path, public_url, secure):
    response = Response()
    set_transaction_cookie(response, config_with(tmp_path, public_url), "signed")
    attrs = attributes(response.headers["set-cookie"])
    assert "httponly" in attrs and attrs["samesite"].lower() == "lax"
    assert ("secure" in attrs) is secure and int(attrs["max-age"]) <= 900


def test_clearing_the_session_cookie_expires_it_with_the_same_attributes(tmp_path):
    response = Response()
    clear_session_cookie(response, config_with(tmp_path, "https://gw.example.com"))
    attrs = attributes(response.headers["set-cookie"])
    assert attrs["max-age"] == "0" and "secure" in attrs and attrs["path"] == "/"
