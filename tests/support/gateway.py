"""Runs the real gateway — `mitmdump -s addons/gateway.py` — as a subprocess for a test."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import tomli_w

from .processes import REPO, VENV_BIN, Process, free_port, running

TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"


@dataclass
class Gateway:
    port: int
    config_path: Path
    state_dir: Path
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sse_url(self, server: str) -> str:
        return f"{self.url}/api/execute/{server}/sse"

    def streamable_url(self, server: str) -> str:
        return f"{self.url}/api/streamable/{server}"

    @property
    def log(self) -> str:
        return self.process.output


def write_config(directory: Path, port: int, servers: Sequence[dict[str, Any]], *, auth: dict[str, Any] | None = None,
                 gateway: dict[str, Any] | None = None, session: dict[str, Any] | None = None,
                 name: str = "gateway.toml", sections: dict[str, Any] | None = None) -> Path:
    """`sections`: further top-level tables, e.g. {"rate_limits": {...}}."""
    document: dict[str, Any] = {
        "gateway": {
            "listen_host": "127.0.0.1",
            "listen_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "state_dir": "state",
            "policy_dir": str(REPO / "policies"),
            # Health checks would add their own requests to what recording upstreams see;
            # the tests of health checks turn them on.
            "health_check_interval": "0s",
            **(gateway or {}),
        },
        "auth": auth if auth is not None else {"enabled": False},
        "servers": list(servers),
    }
    if session:
        document["session"] = session
    document.update(sections or {})
    path = directory / name
    path.write_text(tomli_w.dumps(document))
    return path


def mitmdump_args(config: Path, script: Path | str = "addons/gateway.py", extra_scripts: Sequence[str] = (),
                  tool: str = "mitmdump") -> list[str]:
    args = [str(VENV_BIN / tool)]
    for extra in extra_scripts:
        args += ["-s", str(extra)]
    # listen_port=0: mitmproxy binds its default listener before the gateway switches it to
    # the configured reverse-proxy port; 0 keeps it off 8080, which may be taken.
    return args + ["-s", str(script), "--set", f"gateway_config={config}", "--set", "listen_port=0"]


@contextmanager
def run_gateway(tmp: Path, servers: Sequence[dict[str, Any]], *, auth: dict[str, Any] | None = None,
                gateway: dict[str, Any] | None = None, session: dict[str, Any] | None = None,
                env: dict[str, str] | None = None, extra_scripts: Sequence[str] = (),
                script: Path | str = "addons/gateway.py", port: int | None = None,
                config_dir: Path | None = None, tool: str = "mitmdump", extra_args: Sequence[str] = (),
                sections: dict[str, Any] | None = None) -> Iterator[Gateway]:
    port = port or free_port()
    directory = config_dir or tmp
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, port, servers, auth=auth, gateway=gateway, session=session, sections=sections)
    process_env = {"HOME": str(tmp), "SECRET_KEY": TEST_SECRET_KEY, **(env or {})}
    log = tmp / f"gateway-{port}.log"
    args = [*mitmdump_args(config, script, extra_scripts, tool=tool), *extra_args]
    with running(args, log, port=port, env=process_env, timeout=40) as proc:
        yield Gateway(port, config, directory / "state", proc)


def server_entry(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, **extra}
