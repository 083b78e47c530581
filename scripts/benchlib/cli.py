"""`scripts/bench`: the MCP Gateway's data plane against a direct connection, nginx and
mitmproxy, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import httpx

from .jsonrpc import BenchError
from .machine import describe_machine
from .gateway_profile import profile_summary
from .memory import fds_needed, raise_open_files_limit
from .plan import DEFAULT, QUICK
from .report import render_text, summarize
from .runner import run_plan
from .stack import running_stack

log = logging.getLogger("bench")


class _ElapsedFormatter(logging.Formatter):
    """Seconds since start on every progress line: where a run spends its time."""

    def format(self, record: logging.LogRecord) -> str:
        record.elapsed = record.relativeCreated / 1000
        return super().format(record)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark the gateway's data plane (stock mitmdump and the production launcher with 1 and 2 "
                    "workers) against a direct connection and nginx, in one run on loopback. "
                    "See docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="measure each tools/call cell N times (paths alternate order each round)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON after the table")
    parser.add_argument("--profile", action="store_true",
                        help="run launcher-1 under cProfile and print its hottest functions (inflates its figures)")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="keep configs, logs (and the profile) in DIR instead of a temporary folder")
    return parser


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _run(args: argparse.Namespace, work: Path) -> int:
    plan = QUICK if args.quick else DEFAULT
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    machine = describe_machine()
    profile = work / "launcher-1.prof" if args.profile else None
    fd_limit = raise_open_files_limit(fds_needed(plan.idle_streams))
    log.info("starting upstreams, nginx and the gateways in %s", work)
    try:
        with running_stack(work, plan, profile=profile) as stack:
            results = asyncio.run(run_plan(plan, stack))
    except (BenchError, httpx.HTTPError, AssertionError, RuntimeError, OSError) as e:
        # AssertionError: tests.support.login.login_local asserts the login worked.
        log.error("benchmark failed: %s", e)
        for gateway_log in sorted(work.glob("*/gateway.log")):
            log.error("last lines of %s:\n%s", gateway_log, gateway_log.read_text(errors="replace")[-2000:])
        return 1
    machine["bench_open_files_limit"] = fd_limit
    summary = summarize(results, machine, profiled=profile is not None)
    print(render_text(summary))
    if args.json:
        print(json.dumps(_json_safe(summary), indent=2))
    if profile is not None:
        print()
        print(profile_summary(profile))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ElapsedFormatter("bench %(elapsed)5.1fs: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _run(args, args.keep.resolve())
    with tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-") as work:
        return _run(args, Path(work))
