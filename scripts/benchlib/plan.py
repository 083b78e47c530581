"""How long and how often each measurement runs: --quick and the default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    concurrencies: tuple[int, ...]
    duration: float           # seconds measured per (concurrency, path, round)
    warmup: float             # seconds of load before each measuring window opens
    rounds: int               # paths alternate order each round: forwards, then reversed
    stream_runs: int          # countdown calls per transport and path
    first_event_samples: int  # fresh SSE streams opened per path
    idle_streams: int         # SSE streams held open at once per proxy for the memory figure
    lean_mitmproxy: bool      # add the "mitmproxy floor" row: the launcher's master with no gateway addons
    steps: int = 20
    interval: float = 0.05


QUICK = Plan("quick", (1, 16, 64), duration=0.8, warmup=0.2, rounds=1, stream_runs=1, first_event_samples=10,
             idle_streams=200, lean_mitmproxy=False, steps=10)
DEFAULT = Plan("default", (1, 16, 64), duration=5.0, warmup=1.0, rounds=2, stream_runs=6, first_event_samples=30,
               idle_streams=1000, lean_mitmproxy=True)
