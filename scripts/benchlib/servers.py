"""The programs a benchmark run starts besides the gateways, one subcommand each:

    python -m scripts.benchlib.servers light-upstream --port 8002
    python -m scripts.benchlib.servers stamped-server --port 8001 [--name stamped]
    python -m scripts.benchlib.servers lean-mitmproxy --confdir DIR --mode reverse:http://127.0.0.1:8000@127.0.0.1:9000
    python -m scripts.benchlib.servers profiled-launcher OUT.prof run --config gateway.toml --workers 1

- light-upstream: a minimal MCP upstream, HTTP/1.1 with h11 on asyncio, no SDK. The demo server
  (the `mcp` SDK on uvicorn) spends about 2 ms of CPU per `tools/call`; on a 2-core host that
  would take the cores the proxies are measured on. `POST /mcp` (Streamable HTTP, JSON answers:
  `initialize` gets a result and an `Mcp-Session-Id`, notifications 202, `tools/call` a text
  result, anything else an empty result), `DELETE /mcp` (200), and `GET /sse`: the `endpoint`
  event, then an idle stream held open until the client leaves.
- stamped-server: the demo MCP server plus `stamped_countdown`, whose progress messages carry
  the upstream's `time.monotonic_ns()` at emission. CLOCK_MONOTONIC is one clock for every
  process on a Linux host, so a client subtracts it from its arrival time and gets the event's
  delivery latency without guessing when it was sent.
- lean-mitmproxy: mitmproxy's floor — the launcher's lean master (the same built-in addons as
  `addons/launcher.py`) with none of the gateway's addons, plus one that streams every answer.
  The launcher's row minus this one is what the gateway's addons cost.
- profiled-launcher: the production launcher under cProfile, switched on by SIGUSR1 and off by
  SIGUSR2, so the profile holds the measured load only; written when it exits (SIGTERM).
  `profile_summary` reads it: time per request by part of the program, the gateway's entry
  points and functions, and the process's hottest functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import secrets
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import h11
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mitmproxy import http, options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from addons import launcher
from demo.currenttime import build_app, build_server

from .client import STAMPED_TOOL


# -- light-upstream --------------------------------------------------------------------------------

READ_SIZE = 65536
SESSION_HEADER = b"mcp-session-id"
SERVER_INFO = {"name": "light-upstream", "version": "1"}


def _result(message: dict) -> dict:
    method = message.get("method")
    if method == "initialize":
        return {"protocolVersion": message.get("params", {}).get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}}, "serverInfo": SERVER_INFO}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": f"{time.time():.6f}"}], "isError": False}
    return {}


def answer_post(body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    try:
        message = json.loads(body)
    except ValueError:
        return 400, [(b"content-type", b"text/plain")], b"not JSON"
    if not isinstance(message, dict):
        return 400, [(b"content-type", b"text/plain")], b"batches are not served here"
    if "id" not in message:
        return 202, [], b""
    headers = [(b"content-type", b"application/json")]
    if message.get("method") == "initialize":
        headers.append((SESSION_HEADER, secrets.token_hex(16).encode()))
    answer = {"jsonrpc": "2.0", "id": message["id"], "result": _result(message)}
    return 200, headers, json.dumps(answer, separators=(",", ":")).encode()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER)

    async def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.reader.read(READ_SIZE))

    def send(self, *events) -> None:
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in events))

    async def serve(self) -> None:
        try:
            while True:
                request = await self.next_event()
                if not isinstance(request, h11.Request):
                    return
                body = b""
                while not isinstance(event := await self.next_event(), h11.EndOfMessage):
                    body += event.data
                if request.method == b"GET" and request.target.split(b"?")[0] == b"/sse":
                    return await self.hold_stream()
                status, headers, content = self.route(request, body)
                headers.append((b"content-length", b"%d" % len(content)))
                self.send(h11.Response(status_code=status, headers=headers), h11.Data(data=content), h11.EndOfMessage())
                await self.writer.drain()
                if self.h11.our_state is h11.MUST_CLOSE:
                    return
                self.h11.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError):
            return
        finally:
            self.writer.close()

    @staticmethod
    def route(request: h11.Request, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path = request.target.split(b"?")[0]
        if path == b"/mcp" and request.method == b"POST":
            return answer_post(body)
        if path == b"/mcp" and request.method == b"DELETE":
            return 200, [], b""
        return 404, [(b"content-type", b"text/plain")], b"not here"

    async def hold_stream(self) -> None:
        endpoint = f"event: endpoint\r\ndata: /messages/?session_id={secrets.token_hex(16)}\r\n\r\n".encode()
        self.send(h11.Response(status_code=200, headers=[(b"content-type", b"text/event-stream"),
                                                         (b"cache-control", b"no-store")]),
                  h11.Data(data=endpoint))
        await self.writer.drain()
        while await self.reader.read(READ_SIZE):  # until the client (or the proxy) closes
            pass


async def serve_light(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Connection(reader, writer).serve()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# -- stamped-server --------------------------------------------------------------------------------

def build_stamped_server(name: str) -> MCPServer:
    server = build_server(name)

    @server.tool(name=STAMPED_TOOL)
    async def stamped_countdown(steps: int = 20, interval: float = 0.05, ctx: Context | None = None) -> str:
        """Like countdown; each progress message is the emission time (monotonic ns)."""
        steps = max(1, min(steps, 200))
        for step in range(1, steps + 1):
            await asyncio.sleep(max(0.0, min(interval, 5.0)))
            if ctx is not None:
                await ctx.report_progress(step, steps, str(time.monotonic_ns()))
        return f"counted {steps} steps"

    return server


# -- lean-mitmproxy --------------------------------------------------------------------------------

class StreamAnswers:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = True


async def serve_lean(modes: list[str], confdir: str) -> None:
    opts = options.Options()
    master = Master(opts)
    master.addons.add(core.Core(), disable_h2c.DisableH2C(), proxyserver.Proxyserver(), StreamAnswers(),
                      next_layer.NextLayer(), tlsconfig.TlsConfig(), errorcheck.ErrorCheck())
    opts.update(mode=modes, connection_strategy="lazy", confdir=confdir)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, master.shutdown)
    await master.run()


# -- profiled-launcher -----------------------------------------------------------------------------

def run_profiled_launcher(output: str, args: list[str]) -> int:
    profiler = cProfile.Profile()
    # On Python 3.12 cProfile sits on sys.monitoring: one switch covers every thread.
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
    try:
        return launcher.main(args)
    finally:
        profiler.disable()
        profiler.dump_stats(output)


# -- reading the profile (the tools/call load phase only) ------------------------------------------

REPO = Path(__file__).resolve().parents[2]
GATEWAY_PACKAGES = ("addons", "mcp_gateway")
REQUEST_COUNTER = ("addons/router.py", "requestheaders")  # runs once per request
MIN_CALLS = 10
# Where mitmproxy hands a request to the gateway: the addons' hooks, plus the two entry points
# that are not hooks — error_pages' check of each request head (patched into mitmproxy's
# HTTP/1 reader) and the session store's work on its thread pool.
HOOKS = frozenset({"requestheaders", "request", "responseheaders", "response", "error", "client_connected",
                   "client_disconnected", "server_connect", "server_connected", "server_disconnected"})
OTHER_ENTRIES = frozenset({("addons/error_pages.py", "_refusal"), ("mcp_gateway/sessions/sqlite.py", "_in_thread")})
OTHER_PYTHON = "other Python (stdlib, dataclasses, contextlib, …)"
IDLE = "<method 'poll' of 'select.epoll' objects>"
THREAD_WAITS = ("<method 'acquire' of '_thread.lock' objects>", "<method 'get' of '_queue.SimpleQueue' objects>")
# (bucket, test on the file path); the first that matches wins.
BUCKETS: tuple[tuple[str, str], ...] = (
    ("gateway addons (addons/)", "/addons/"),
    ("gateway core (mcp_gateway/)", "/mcp_gateway/"),
    ("mitmproxy", "/mitmproxy/"),
    ("asyncio", "/asyncio/"),
    ("logging", "/logging/"),
    ("sqlite3 (the session store's threads)", "/sqlite3/"),
    ("threads, queues, executors", "/concurrent/"),
    ("threads, queues, executors", "/threading.py"),
    ("json", "/json/"),
)


def _relative(filename: str) -> str | None:
    try:
        return str(Path(filename).resolve().relative_to(REPO))
    except (ValueError, OSError):
        return None


def _is_gateway_code(filename: str) -> bool:
    relative = _relative(filename)
    return relative is not None and relative.split("/", 1)[0] in GATEWAY_PACKAGES


def _where(filename: str, line: int, function: str) -> str:
    shown = _relative(filename)
    if shown is None:
        parts = Path(filename).parts
        shown = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else Path(filename).name
    return f"{shown}:{line}({function})"


def _bucket(filename: str, function: str) -> str:
    if filename == "~":
        return "C built-ins (socket I/O, str/bytes, sqlite calls, …)"
    relative = _relative(filename)
    probe = "/" + relative if relative is not None else filename
    return next((name for name, marker in BUCKETS if marker in probe), OTHER_PYTHON)


def _requests(stats: dict) -> int:
    for (filename, _, function), (_, calls, *_rest) in stats.items():
        if filename.endswith(REQUEST_COUNTER[0]) and function == REQUEST_COUNTER[1]:
            return calls
    return 0


def _busy(key: tuple[str, int, str]) -> bool:
    return key[2] != IDLE and key[2] not in THREAD_WAITS


def _rows(stats: dict, keep, sort_index: int, limit: int, requests: int) -> list[str]:
    # values: (primitive calls, total calls, own time, cumulative time, callers)
    entries = sorted(((key, value) for key, value in stats.items() if value[1] >= MIN_CALLS and keep(key)),
                     key=lambda item: item[1][sort_index], reverse=True)[:limit]
    lines = [f"{'calls':>9} {'own s':>7} {'cum s':>7} {'own µs/req':>10} {'cum µs/req':>10}  function"]
    for (filename, line, function), (_, calls, own, cumulative, _) in entries:
        lines.append(f"{calls:>9} {own:>7.3f} {cumulative:>7.3f} {own / requests * 1e6:>10.1f} "
                     f"{cumulative / requests * 1e6:>10.1f}  {_where(filename, line, function)}")
    return lines


def _is_entry(key: tuple[str, int, str]) -> bool:
    relative = _relative(key[0])
    if relative is None:
        return False
    return (relative.startswith("addons/") and key[2] in HOOKS) or (relative, key[2]) in OTHER_ENTRIES


def _entries(stats: dict, requests: int) -> list[str]:
    rows = sorted(((value[3], key) for key, value in stats.items() if _is_entry(key)), reverse=True)
    lines = [f"{'cum µs/req':>10}  entry point"]
    lines += [f"{cumulative / requests * 1e6:>10.0f}  {_where(*key)}" for cumulative, key in rows
              if cumulative / requests * 1e6 >= 1]
    busy = sum(value[2] for key, value in stats.items() if _busy(key))
    total = sum(cumulative for cumulative, _ in rows)
    lines.append(f"{total / requests * 1e6:>10.0f}  all of them: {total / busy:.0%} of the process's busy time")
    return lines


def _breakdown(stats: dict, requests: int) -> list[str]:
    own: dict[str, float] = defaultdict(float)
    for key, value in stats.items():
        if _busy(key):
            own[_bucket(key[0], key[2])] += value[2]
    total = sum(own.values())
    lines = [f"{'µs/req':>8} {'share':>6}  part of the program (own time, waiting in epoll and on locks left out)"]
    for name, seconds in sorted(own.items(), key=lambda item: item[1], reverse=True):
        lines.append(f"{seconds / requests * 1e6:>8.0f} {seconds / total:>6.1%}  {name}")
    lines.append(f"{total / requests * 1e6:>8.0f} {1:>6.0%}  total")
    return lines


def profile_summary(path: Path, limit: int = 25) -> str:
    if not path.exists():
        return f"no profile written at {path} (did the launcher exit cleanly?)"
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    requests = _requests(stats)
    if not requests:
        return f"the profile at {path} holds no request"
    out = [f"Profile of launcher-1 during its tools/call cells: {path}",
           f"{requests} requests profiled (calls of {REQUEST_COUNTER[0]} {REQUEST_COUNTER[1]}). cProfile roughly "
           "doubles the cost of Python calls: read shares, not absolute times.", "",
           "Where the time goes, per request:"]
    out += _breakdown(stats, requests)
    out += ["", "The gateway's entry points (its addons' hooks, the request-head check, the session store's "
                "thread), cumulative: their own code plus the mitmproxy and library calls they make:"]
    out += _entries(stats, requests)
    out += ["", f"The gateway's own functions ({', '.join(GATEWAY_PACKAGES)}), by cumulative time "
                "(cumulative includes what they call, mitmproxy's and the store's included):"]
    out += _rows(stats, lambda key: _is_gateway_code(key[0]), 3, limit, requests)
    out += ["", "Whole process by own time, waiting left out:"]
    out += _rows(stats, _busy, 2, limit, requests)
    return "\n".join(out)


# -- the command line ----------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    if argv[:1] == ["profiled-launcher"]:  # the launcher's own arguments follow, unparsed
        return run_profiled_launcher(argv[1], argv[2:])
    parser = argparse.ArgumentParser(prog="python -m scripts.benchlib.servers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    light = commands.add_parser("light-upstream")
    light.add_argument("--port", type=int, required=True)
    stamped = commands.add_parser("stamped-server")
    stamped.add_argument("--port", type=int, required=True)
    stamped.add_argument("--name", default="currenttime")
    stamped.add_argument("--json-response", action="store_true")
    lean = commands.add_parser("lean-mitmproxy")
    lean.add_argument("--mode", action="append", required=True)
    lean.add_argument("--confdir", required=True)
    args = parser.parse_args(argv)
    if args.command == "light-upstream":
        try:
            asyncio.run(serve_light(args.port))
        except KeyboardInterrupt:
            pass
    elif args.command == "stamped-server":
        app = build_app(build_stamped_server(args.name), json_response=args.json_response)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    else:
        launcher.run_event_loop(serve_lean(args.mode, args.confdir))  # the launcher's loop: the same floor
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
