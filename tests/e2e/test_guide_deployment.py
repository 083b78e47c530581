"""The guide's deployment, as written: its `docker run` (env vars only, the two volumes), Cognito
from its five variables, and a public URL that derives from the callback URI.

No container engine runs here, so the image's entrypoint runs as the container would run it: a
temporary folder laid out like the image's /app (what the Dockerfile copies, linked), the
Dockerfile's ENV with /app mapped onto that folder, the guide's `-e` variables, and the two
volumes (`logs`, `registry/servers`) as plain folders. Two things differ from the guide, and only
because of this machine: the port is a free one instead of 7860 (MCP_GATEWAY_LISTEN_PORT, on
127.0.0.1), and AWS is not reachable, so MCP_AUTH_COGNITO_ENDPOINT_URL points at moto — whose
discovery document lacks the hosted-UI endpoints Cognito lists for a pool with a domain, so a
small stand-in completes it (tests/support/cognito_discovery.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.cognito import CognitoAppClient, MotoCognito
from tests.support.cognito import moto_cognito  # noqa: F401  (fixture)
from tests.support.cognito_discovery import CompletedDiscovery, completed_cognito_discovery
from tests.support import waiting
from tests.support.processes import REPO, VENV_BIN, Process, free_port, wait_for_port

pytestmark = pytest.mark.timeout(120)

HOSTED_UI = "https://mcp-staff.auth.us-east-1.amazoncognito.com"
GUIDE_PASSWORD = "password"  # the guide's ADMIN_PASSWORD


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def lay_out_app(root: Path) -> Path:
    """The image's /app: every COPY of the Dockerfile, linked from the repository."""
    app = root / "app"
    app.mkdir()
    for instruction, args in dockerfile():
        if instruction != "COPY":
            continue
        *sources, target = shlex.split(args)
        for source in sources:
            destination = app / source if target.endswith("/") else app / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.symlink_to(REPO / source)
    return app


def image_env(app: Path) -> dict[str, str]:
    """The Dockerfile's ENV, with /app mapped onto the folder standing in for it."""
    env: dict[str, str] = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = re.sub(r"^/app\b", str(app), value)
    return env


def guide_env(app: CognitoAppClient, emulator: CompletedDiscovery, callback: str) -> dict[str, str]:
    """The `-e` options of the guide's `docker run`, word for word but for the callback's port."""
    return {
        "ADMIN_USER": "admin", "ADMIN_PASSWORD": GUIDE_PASSWORD, "SECRET_KEY": secrets.token_hex(32),
        "MCP_AUTH_ENABLED": "true", "MCP_AUTH_PROVIDER_TYPE": "cognito",
        "MCP_AUTH_COGNITO_USER_POOL_ID": app.pool.pool_id, "MCP_AUTH_COGNITO_CLIENT_ID": app.client_id,
        "MCP_AUTH_COGNITO_CLIENT_SECRET": app.client_secret or "", "MCP_AUTH_COGNITO_CALLBACK_URI": callback,
        "MCP_AUTH_COGNITO_REGION": "us-east-1",
        # this machine only: AWS is not reachable, moto (completed) stands in for it
        "MCP_AUTH_COGNITO_ENDPOINT_URL": emulator.url,
    }


@contextmanager
def container(tmp_path: Path, env: dict[str, str], port: int) -> Iterator[tuple[Path, Process]]:
    app = lay_out_app(tmp_path)
    for volume in ("logs", "registry/servers"):  # -v $(pwd)/logs:/app/logs -v $(pwd)/registry/servers:...
        (app / volume).mkdir(parents=True)
    entrypoint = yaml.safe_load(dict(dockerfile())["ENTRYPOINT"])
    command = [re.sub(r"^/app\b", str(app), part) for part in entrypoint]
    process_env = {**image_env(app), **env, "MCP_GATEWAY_LISTEN_PORT": str(port),
                   "MCP_GATEWAY_LISTEN_HOST": "127.0.0.1", "HOME": str(tmp_path),
                   "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    process_env.pop("MCP_GATEWAY_CONFIG", None)
    os.environ.pop("MCP_GATEWAY_CONFIG", None)
    process = Process(command, tmp_path / "container.log", env=process_env, cwd=app)
    try:
        wait_for_port(port, process.proc, timeout=60, log=tmp_path / "container.log")
        yield app, process
    finally:
        process.stop()


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    waiting.wait_until(check, timeout, what, interval=0.2, ignoring=(httpx.HTTPError,))


def test_the_guides_docker_run_works_as_written(moto_cognito: MotoCognito, tmp_path: Path) -> None:
    pool = moto_cognito.create_pool("staff", groups=["mcp-admin"])
    app_client = moto_cognito.create_app_client(pool)
    port = free_port()
    gateway = f"http://localhost:{port}"
    with completed_cognito_discovery(moto_cognito.endpoint_url, HOSTED_UI) as emulator, \
            container(tmp_path, guide_env(app_client, emulator, f"{gateway}/oauth/callback/cognito"), port) as (app, proc):
        with httpx.Client(base_url=gateway, timeout=10) as http:
            wait_until(lambda: http.get("/oauth/healthz").status_code == 200, what="the login app: " + proc.output)
            # the public URL derives from the callback URI: the facade's metadata names it
            assert http.get("/.well-known/oauth-authorization-server").json()["issuer"] == gateway

            # Cognito from the five variables: the sign-in goes to the hosted UI the pool's document names
            start = http.get("/oauth/login/cognito")
            assert start.status_code in (302, 303), start.text
            location = httpx.URL(start.headers["location"])
            assert str(location.copy_with(query=None)) == f"{HOSTED_UI}/oauth2/authorize"
            assert location.params["redirect_uri"] == f"{gateway}/oauth/callback/cognito"

            # ADMIN_USER / ADMIN_PASSWORD sign in
            signed_in = http.post("/oauth/login/local", data={"username": "admin", "password": GUIDE_PASSWORD},
                                  headers={"origin": gateway})
            assert signed_in.status_code == 303, signed_in.text
            assert "secure" not in signed_in.headers["set-cookie"].lower()  # http public URL
            session = signed_in.cookies["mcp_gateway_session"]
            http.cookies.clear()  # sent by hand below, exactly once
            signed = {"cookie": f"mcp_gateway_session={session}"}
            me = http.get("/oauth/me", headers=signed).json()
            assert me["user"] == "admin" and "mcp-admin" in me["groups"]
            assert http.get("/api/servers", headers=signed).status_code == 200
            assert http.get("/api/servers").status_code == 401

            # a server definition file dropped into the registry/servers volume is served, without a restart
            (app / "registry" / "servers" / "currenttime.json").write_text(json.dumps(
                {"server_name": "Current time", "path": "/currenttime", "proxy_pass_url": "http://127.0.0.1:9",
                 "description": "from the volume", "tags": ["time"]}))
            wait_until(lambda: http.get("/api/servers/currenttime", headers=signed).status_code == 200,
                       what="the server from the registry/servers volume")
            assert http.get("/api/servers/currenttime", headers=signed).json()["description"] == "from the volume"

        # the access log and the audit log land in the logs volume, a line per request
        access, audit = app / "logs" / "access.log", app / "logs" / "audit.jsonl"
        def registry_statuses() -> list[int]:  # the audit file is written in batches by its own thread
            records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
            return sorted(r["status"] for r in records if r["path"] == "/api/servers")

        wait_until(lambda: len(registry_statuses()) >= 2, what="the audit records of /api/servers")
        assert registry_statuses() == [200, 401]
        lines = access.read_text().splitlines()
        assert len([line for line in lines if "path=/api/servers " in line]) == 2
        assert session not in access.read_text() and session not in audit.read_text()
        output = proc.output  # (before the stop: mitmproxy may log a cancelled connection on SIGTERM)
    assert f"configured from the environment alone; relative paths resolve against {app}" in output
    assert (app / "var" / "sessions.db").exists()  # state_dir "var" under /app, servers_dir registry/servers too
    assert "Traceback" not in output


def test_an_https_callback_on_another_host_gives_the_public_url_and_secure_cookies(
        moto_cognito: MotoCognito, tmp_path: Path) -> None:
    """Env only, no config file; the gateway listens on loopback behind a TLS-terminating proxy."""
    app_client = moto_cognito.create_app_client(moto_cognito.create_pool("staff"))
    public = "https://gateway.example.test:8443"
    port = free_port()
    with completed_cognito_discovery(moto_cognito.endpoint_url, HOSTED_UI) as emulator, \
            container(tmp_path, guide_env(app_client, emulator, f"{public}/oauth/callback/cognito"), port) as (_, proc):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_until(lambda: http.get("/oauth/healthz").status_code == 200, what="the login app: " + proc.output)
            metadata = http.get("/.well-known/oauth-authorization-server").json()
            assert (metadata["issuer"], metadata["authorization_endpoint"]) == (public, f"{public}/oauth/authorize")
            signed_in = http.post("/oauth/login/local", data={"username": "admin", "password": GUIDE_PASSWORD},
                                  headers={"origin": public})
            assert signed_in.status_code == 303, signed_in.text
            assert "; secure" in signed_in.headers["set-cookie"].lower()
    assert "MCP Gateway listening on 127.0.0.1:%d (public URL %s)" % (port, public) in proc.output


def test_a_pool_without_endpoints_stops_start_up_saying_what_to_set(moto_cognito: MotoCognito,
                                                                      tmp_path: Path) -> None:
    app_client = moto_cognito.create_app_client(moto_cognito.create_pool("staff"))
    port = free_port()
    with completed_cognito_discovery(moto_cognito.endpoint_url, HOSTED_UI, complete=False) as emulator:
        env = guide_env(app_client, emulator, f"http://localhost:{port}/oauth/callback/cognito")
        app = lay_out_app(tmp_path)
        entrypoint = [re.sub(r"^/app\b", str(app), part) for part in yaml.safe_load(dict(dockerfile())["ENTRYPOINT"])]
        process = Process(entrypoint, tmp_path / "container.log", cwd=app, env={
            **image_env(app), **env, "MCP_GATEWAY_LISTEN_PORT": str(port), "MCP_GATEWAY_LISTEN_HOST": "127.0.0.1",
            "HOME": str(tmp_path), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})
        code = process.wait_exit(timeout=60)
    output = process.output
    assert code != 0, output
    errors = [line for line in output.splitlines() if "gateway configuration error" in line]
    assert len(errors) == 1, output
    assert "names no authorization_endpoint" in errors[0] and "MCP_AUTH_COGNITO_DOMAIN" in errors[0]
    assert "Traceback" not in output


def test_an_unreachable_pool_lets_the_gateway_start_and_sign_in_answer_503(moto_cognito: MotoCognito,
                                                                           tmp_path: Path) -> None:
    app_client = moto_cognito.create_app_client(moto_cognito.create_pool("staff"))
    port = free_port()
    nowhere = CompletedDiscovery(url=f"http://127.0.0.1:{free_port()}", hosted_ui=HOSTED_UI)  # nothing listens
    env = guide_env(app_client, nowhere, f"http://localhost:{port}/oauth/callback/cognito")
    with container(tmp_path, env, port) as (_, proc):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_until(lambda: http.get("/oauth/healthz").status_code == 200, what="the login app: " + proc.output)
            for accept in ("text/html", "application/json"):
                refused = http.get("/oauth/login/cognito", headers={"accept": accept})
                assert refused.status_code == 503, refused.text
                assert "not available yet" in refused.text and "cannot be reached" not in refused.text
            signed_in = http.post("/oauth/login/local", data={"username": "admin", "password": GUIDE_PASSWORD},
                                  headers={"origin": f"http://localhost:{port}"})
            assert signed_in.status_code == 303  # local accounts keep working meanwhile
        output = proc.output
    assert "sign-in not available yet" in output and "retrying in the background" in output
    assert "gateway configuration error" not in output
