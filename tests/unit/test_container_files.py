"""The container files, checked without a container engine (none runs here; the image is not
built by the tests): compose.yaml parses and wires what the gateway's config expects, every
path the Dockerfile copies exists, and the ports agree everywhere."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from starlette.testclient import TestClient

from demo.currenttime import build_app, build_server
from mcp_gateway.config import load_config

REPO = Path(__file__).resolve().parents[2]
APP = "/app"  # the image's WORKDIR
CONFIG_IN_COMPOSE = "/app/gateway.toml"  # the default file name in the working directory
SECRETS = {"SECRET_KEY": "k" * 48, "ADMIN_USER": "admin", "ADMIN_PASSWORD": "a-password"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile_instructions() if instruction == name]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def compose_config():
    return load_config(REPO / "deploy" / "gateway.compose.toml", env=SECRETS)


def test_the_image_is_slim_python_and_runs_as_a_user():
    assert instructions("FROM") == ["python:3.12-slim"]
    # Started as root only to hand the volume folders to the user `gateway`, then runs as it.
    assert "useradd --system --uid 10001" in " ".join(instructions("RUN"))
    script = (REPO / "deploy" / "entrypoint.sh").read_text()
    assert 'exec setpriv --reuid="$run_as" --regid="$run_as" --init-groups python -m addons.launcher run' in script
    assert "run_as=gateway" in script


def test_everything_the_dockerfile_copies_exists():
    for args in instructions("COPY"):
        sources = shlex.split(args)[:-1]
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored  # local state never enters the image


def test_the_entrypoint_runs_the_launcher_from_app_without_a_config_file():
    assert instructions("WORKDIR") == [APP]
    entrypoint = yaml.safe_load(instructions("ENTRYPOINT")[0])  # exec form is a JSON/YAML list
    assert entrypoint == ["sh", f"{APP}/deploy/entrypoint.sh"]
    assert any(shlex.split(args) == ["deploy/entrypoint.sh", "./deploy/entrypoint.sh"] for args in instructions("COPY"))
    script = (REPO / "deploy" / "entrypoint.sh").read_text()
    assert "exec python -m addons.launcher run" in script and "--config" not in script
    # No configuration file in the image: the environment alone configures it (docs/container.md).
    assert not any("gateway.toml" in args for args in instructions("COPY"))
    assert "MCP_GATEWAY_CONFIG" not in " ".join(instructions("ENV"))


def test_the_logs_folder_is_where_the_guides_volume_goes():
    env = " ".join(instructions("ENV"))
    assert re.search(r"MCP_GATEWAY_LOG_DIR=/app/logs\b", env)
    owned = " ".join(instructions("RUN"))
    for folder in ("/app/logs", "/app/registry/servers", "/app/var"):
        assert folder in owned, f"the image does not prepare {folder}"


def test_the_demo_extra_it_installs_exists():
    installs = " ".join(instructions("RUN"))
    extras = re.findall(r'pip install "\.\[([a-z,]+)\]"', installs)
    assert extras, "the Dockerfile does not pip install the project"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("optional-dependencies", {})
    for extra in extras[0].split(","):
        assert extra in declared, f"pyproject.toml has no [{extra}] extra for the Dockerfile's pip install"
    assert any(dep.startswith("mcp") for dep in declared.get("demo", [])), "the demo server needs the mcp SDK"


def test_ports_agree_between_dockerfile_config_and_compose(compose, compose_config):
    port = compose_config.listen_port
    assert port == 7860  # as in the docs
    assert instructions("EXPOSE") == [str(port)]
    healthcheck = instructions("HEALTHCHECK")[0]
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck
    published = compose["services"]["gateway"]["ports"]
    assert f"{port}:{port}" in published
    metrics = f"127.0.0.1:{compose_config.metrics_port}:{compose_config.metrics_port}"
    assert metrics in published, "metrics must be published on the host's loopback only"
    assert compose_config.listen_host == "0.0.0.0"


def test_compose_mounts_config_policies_and_state_where_the_config_expects_them(compose, compose_config):
    gateway = compose["services"]["gateway"]
    mounts = dict(volume.split(":")[:2] for volume in gateway["volumes"])  # source:target[:ro]
    assert mounts["./deploy/gateway.compose.toml"] == CONFIG_IN_COMPOSE
    assert mounts["./policies"] == str(compose_config.policy_dir)
    assert mounts["gateway-state"] == str(compose_config.state_dir)
    assert "gateway-state" in compose["volumes"]
    for host_path in (p for p in mounts if p.startswith("./")):
        assert (REPO / host_path).exists(), host_path
    assert set(gateway["environment"]) >= {"SECRET_KEY", "ADMIN_USER", "ADMIN_PASSWORD", "LOGGING_LEVEL"}


def test_the_demo_server_is_reached_by_its_service_name(compose, compose_config):
    server = compose_config.server("currenttime")
    upstream = urlsplit(server.url)
    assert upstream.hostname in compose["services"]
    demo = compose["services"][upstream.hostname]
    command = demo["command"]
    assert command[command.index("--allowed-host") + 1] == upstream.netloc
    assert command[command.index("--port") + 1] == str(upstream.port)
    assert compose["services"]["gateway"]["depends_on"][upstream.hostname]["condition"] == "service_healthy"


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.mark.parametrize("allowed,host,status", [
    ([], "currenttime:8000", 421),                  # the SDK's default: loopback only
    (["currenttime:8000"], "currenttime:8000", 200),
    (["currenttime:8000"], "elsewhere:8000", 421),  # the DNS-rebinding check stays on
    (["currenttime:8000"], "127.0.0.1:8000", 200),
])
def test_the_demo_server_accepts_the_hosts_it_is_told(allowed, host, status):
    app = build_app(build_server(), allowed_hosts=allowed)
    with TestClient(app, base_url=f"http://{host}") as client:
        answer = client.post("/mcp", json=INITIALIZE, headers={"accept": "application/json, text/event-stream"})
    assert answer.status_code == status
