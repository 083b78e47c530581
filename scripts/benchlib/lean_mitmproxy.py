"""mitmproxy's floor: the production launcher's lean master with none of the gateway's addons.

The same built-in addons as `addons/launcher.py` builds its master with, plus one addon that
streams every answer (as the gateway's forwarder does). What mitmproxy itself costs per
request in the launcher's set-up; the launcher's row minus this one is the gateway's addons.

    python -m scripts.benchlib.lean_mitmproxy --confdir DIR \\
        --mode reverse:http://127.0.0.1:8000@127.0.0.1:9000 [--mode …]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from mitmproxy import http, options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master



class StreamAnswers:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = True


async def serve(modes: list[str], confdir: str) -> None:
    opts = options.Options()
    master = Master(opts)
    master.addons.add(core.Core(), disable_h2c.DisableH2C(), proxyserver.Proxyserver(), StreamAnswers(),
                      next_layer.NextLayer(), tlsconfig.TlsConfig(), errorcheck.ErrorCheck())
    opts.update(mode=modes, connection_strategy="lazy", confdir=confdir)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, master.shutdown)
    await master.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", action="append", required=True)
    parser.add_argument("--confdir", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.confdir))


if __name__ == "__main__":
    main()
