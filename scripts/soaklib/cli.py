"""`scripts/soak`: run the load through one gateway and report what was not as intended."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .load import Tally, run_load
from .probe import Usage, usage
from .stack import running_stack

log = logging.getLogger("soak")


@dataclass(frozen=True)
class Plan:
    requests: int
    streams: int
    concurrency: int = 16
    stream_concurrency: int = 4
    warmup_requests: int = 200
    warmup_streams: int = 10
    max_fd_growth: int = 8           # descriptors the gateway may hold beyond its warmed-up count
    max_rss_growth_kib: int = 32 * 1024


FULL = Plan(requests=20_000, streams=500)
QUICK = Plan(requests=1_000, streams=50)
SETTLE_SECONDS = 15.0  # for connections the load closed to be closed on the gateway's side too


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.requests} requests and {QUICK.streams} streams")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON after the report")
    parser.add_argument("--keep", metavar="DIR", type=Path, help="keep configs and logs in DIR")
    return parser


def _settled(pid: int) -> Usage:
    """The gateway's usage once the connections a load closed are closed on its side too."""
    deadline = time.monotonic() + SETTLE_SECONDS
    previous = usage(pid)
    while True:
        time.sleep(1.0)
        now = usage(pid)
        if now.fds == previous.fds or time.monotonic() > deadline:
            return now
        previous = now


def _report(plan: Plan, tally: Tally, before: Usage, after: Usage, seconds: float) -> tuple[str, bool]:
    fd_growth, rss_growth = after.fds - before.fds, after.rss_kib - before.rss_kib
    within = fd_growth <= plan.max_fd_growth and rss_growth <= plan.max_rss_growth_kib
    lines = [f"soak: {plan.requests} requests and {plan.streams} SSE streams in {seconds:.0f}s "
             f"({plan.concurrency} request workers, {plan.stream_concurrency} stream workers)"]
    for kind in sorted(set(tally.done) | set(tally.unexpected)):
        lines.append(f"  {kind:<16} {tally.done[kind]:>7} as intended   {tally.unexpected[kind]:>5} not")
    lines.append(f"unexpected responses: {tally.total_unexpected}")
    lines += [f"  {example}" for example in tally.examples]
    lines.append(f"gateway file descriptors: {before.fds} before, {after.fds} after "
                 f"(growth {fd_growth:+d}, bound {plan.max_fd_growth})")
    lines.append(f"gateway resident memory: {before.rss_kib / 1024:.1f} MiB before, {after.rss_kib / 1024:.1f} MiB "
                 f"after (growth {rss_growth / 1024:+.1f} MiB, bound {plan.max_rss_growth_kib / 1024:.0f} MiB)")
    ok = within and tally.total_unexpected == 0
    lines.append("result: PASS" if ok else "result: FAIL")
    return "\n".join(lines), ok


def _run(plan: Plan, work: Path, as_json: bool) -> int:
    log.info("starting two demo MCP servers and the gateway in %s", work)
    with running_stack(work) as stack:
        log.info("warming up: %d requests, %d streams", plan.warmup_requests, plan.warmup_streams)
        warmup = asyncio.run(run_load(stack, plan.warmup_requests, plan.warmup_streams, plan.concurrency,
                                      plan.stream_concurrency))
        before = _settled(stack.gateway_pid)
        log.info("soaking: %d requests, %d streams", plan.requests, plan.streams)
        started = time.monotonic()
        tally = asyncio.run(run_load(stack, plan.requests, plan.streams, plan.concurrency, plan.stream_concurrency))
        seconds = time.monotonic() - started
        after = _settled(stack.gateway_pid)
    text, ok = _report(plan, tally, before, after, seconds)
    if warmup.total_unexpected:
        text += f"\n(warm-up: {warmup.total_unexpected} unexpected: {warmup.examples[:3]})"
        ok = False
    print(text)
    if as_json:
        print(json.dumps({"plan": asdict(plan), "seconds": round(seconds, 1), "as_intended": dict(tally.done),
                          "unexpected": dict(tally.unexpected), "examples": tally.examples,
                          "before": asdict(before), "after": asdict(after), "pass": ok}, indent=2))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _run(plan, args.keep, args.json)
    with tempfile.TemporaryDirectory(prefix="mcp-gateway-soak-") as work:
        return _run(plan, Path(work), args.json)
