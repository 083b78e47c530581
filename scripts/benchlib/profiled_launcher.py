"""The production launcher under cProfile, switched on by SIGUSR1 and off by SIGUSR2, so the
profile holds the measured load and not start-up, imports or idle time between cells.
The statistics are written when the launcher exits (SIGTERM).

    python -m scripts.benchlib.profiled_launcher OUT.prof run --config gateway.toml --workers 1
"""

from __future__ import annotations

import cProfile
import signal
import sys

from addons import launcher


def main() -> int:
    output, args = sys.argv[1], sys.argv[2:]
    profiler = cProfile.Profile()
    # On Python 3.12 cProfile sits on sys.monitoring: one switch covers every thread.
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
    try:
        return launcher.main(args)
    finally:
        profiler.disable()
        profiler.dump_stats(output)


if __name__ == "__main__":
    sys.exit(main())
