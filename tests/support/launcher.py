"""Runs the production launcher — `python -m addons.launcher run` — as a subprocess for a test."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from mitmproxy.certs import CertStore
from mitmproxy.options import CONF_BASENAME, KEY_SIZE

from .gateway import TEST_SECRET_KEY, Gateway, run_gateway, write_config
from .login import wait_for_login_app
from .processes import VENV_BIN, free_port, running

WORKER_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def launcher_args(config: Path, workers: int) -> list[str]:
    return [str(VENV_BIN / "python"), "-m", "addons.launcher", "run", "--config", str(config),
            "--workers", str(workers)]


@contextmanager
def run_launcher(tmp: Path, servers: Sequence[dict[str, Any]], *, workers: int = 1,
                 auth: dict[str, Any] | None = None, gateway: dict[str, Any] | None = None,
                 session: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 config_dir: Path | None = None, sections: dict[str, Any] | None = None,
                 port: int | None = None) -> Iterator[Gateway]:
    """The launcher with `workers` processes; yields once every worker listens."""
    port = port or free_port()
    directory = config_dir or tmp
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, port, servers, auth=auth, gateway=gateway, session=session, sections=sections)
    process_env = {"HOME": str(tmp), "SECRET_KEY": TEST_SECRET_KEY, **(env or {})}
    with running(launcher_args(config, workers), tmp / f"launcher-{port}.log", port=port, env=process_env,
                 timeout=40) as proc:
        gw = Gateway(port, config, directory / "state", proc)
        wait_for_log(gw, "MCP Gateway listening on", count=workers)
        yield gw


def wait_for_log(gw: Gateway, text: str, count: int = 1, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while gw.log.count(text) < count:
        if time.monotonic() > deadline or gw.process.proc.poll() is not None:
            raise TimeoutError(f"{text!r} not logged {count} times:\n{gw.log[-3000:]}")
        time.sleep(0.1)
    return gw.log


def worker_pids(gw: Gateway) -> dict[int, int]:
    """The latest pid of each worker, from the launcher's log."""
    return {int(index): int(pid) for index, pid in WORKER_STARTED.findall(gw.log)}


def children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"



@contextmanager
def mitmdump_and_launcher(tmp: Path, **shared: Any) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateway instances with the same configuration `shared` (one state dir, one store):
    A as `mitmdump -s addons/gateway.py`, B as the launcher with two workers; both login apps up."""
    # Started side by side, so mitmproxy's CA in the shared state dir is made first (docs/operations.md).
    CertStore.from_store(Path(shared["gateway"]["state_dir"]) / "mitmproxy", CONF_BASENAME, KEY_SIZE)
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        starting_a = pool.submit(stack.enter_context, run_gateway(tmp / "a", **shared))
        b = stack.enter_context(run_launcher(tmp / "b", workers=2, **shared))
        a = starting_a.result()
        wait_for_login_app(a)
        wait_for_login_app(b)
        yield a, b
