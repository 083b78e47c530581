"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

from .nginx import nginx_binary


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit(repo: Path) -> str:
    """The commit measured, "+changes" when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if changed else "")


def _nginx_version() -> str:
    binary = nginx_binary()
    if binary is None:
        return "not installed"
    try:
        # `nginx -v` prints "nginx version: nginx/1.22.1" on stderr.
        printed = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return printed.strip().rpartition("/")[2] or "unknown"


def describe_machine() -> dict[str, object]:
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mitmproxy": version("mitmproxy"),
        "mcp": version("mcp"),
        "httpx": version("httpx"),
        "nginx": _nginx_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "gateway_commit": _commit(Path(__file__).resolve().parents[2]),
    }
