"""Optional backends load only when configured (docs/architecture.md §3): every gateway worker and
login app start would otherwise load the Redis client and the OAuth client library."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import REPO

OPTIONAL = ("redis", "authlib")


def modules_loaded_by(statement: str) -> list[str]:
    probe = f"import sys; {statement}; print(' '.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_proxy_addons_and_the_login_app_load_neither_redis_nor_authlib():
    assert modules_loaded_by("import addons.chain, addons.settings, login_app.app") == []


def test_a_redis_store_and_an_oidc_provider_load_them_when_used():
    loaded = modules_loaded_by(
        "from mcp_gateway.providers import provider_class; from mcp_gateway.sessions import open_store; "
        "from pathlib import Path; provider_class('generic'); "
        "open_store('redis://127.0.0.1:1/0', base_dir=Path('.'), lifetime=1, idle_timeout=1, secretbox=None)")
    assert loaded == list(OPTIONAL)
