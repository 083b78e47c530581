"""How long and how often each measurement runs: --quick, the default, --full."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Plan:
    name: str
    concurrencies: tuple[int, ...]
    duration: float           # seconds measured per (concurrency, path, round)
    warmup: float             # seconds of load before each measuring window opens
    rounds: int               # paths alternate order each round: direct, mitmproxy, gateway, then reversed
    stream_runs: int          # countdown calls per transport and path
    first_event_samples: int  # fresh SSE streams opened per path
    steps: int = 20
    interval: float = 0.05


QUICK = Plan("quick", (1, 16), duration=1.5, warmup=0.5, rounds=1, stream_runs=1, first_event_samples=10)
DEFAULT = Plan("default", (1, 16), duration=5.0, warmup=1.0, rounds=2, stream_runs=6, first_event_samples=30)
FULL = replace(DEFAULT, name="full", concurrencies=(1, 16, 64))
