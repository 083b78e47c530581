"""The production launcher: the gateway's addons on a lean mitmproxy master.

    mcp-gateway run --config gateway.toml [--workers N]
    python -m addons.launcher run --config gateway.toml [--workers N]

`mitmdump -s addons/gateway.py` loads some thirty built-in addons and a script reloader,
and mitmproxy dispatches every hook event of every request to all of them. This launcher
builds mitmproxy's `Master` with only the built-ins a reverse-proxy gateway uses, adds the
same addon chain as the `-s` script, and sets the listening options before start-up (no
detour through port 8080) — the same options `Settings` applies under mitmdump.

With `--workers N` (N > 1) this process is a supervisor that proxies nothing itself: it
starts the one login app (unless `login_app_url` names an external one) and N worker
processes, each a master on the configured port with SO_REUSEPORT, so the kernel spreads
new connections over them. A worker that dies is restarted; SIGTERM or SIGINT stops all.
Workers share sessions through the session store and the registry through its state file,
exactly like separate gateway instances.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Coroutine

from mitmproxy import certs, hooks, options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.proxy import mode_servers

from mcp_gateway import logsafe
from mcp_gateway.config import WORKER_INDEX, ConfigError, GatewayConfig, load_config

from .chain import build_chain
from .chain_dispatch import ChainDispatch
from .runtime import Runtime
from .settings import Settings, confdir_for, proxy_options
from .supervisor import LoginAppSupervisor

log = logging.getLogger("addons.launcher")

REPO = Path(__file__).resolve().parent.parent
CHECK_INTERVAL = 0.5
HEALTHY_AFTER = 30.0  # a worker that lived this long restarts without back-off
MAX_BACKOFF = 10.0
STOP_TIMEOUT = 5.0  # beyond drain_timeout: then a worker is killed


class StartupCheck(errorcheck.ErrorCheck):
    """mitmproxy's start-up error check, which also tells when start-up has succeeded."""

    name = "errorcheck"  # the master looks it up by this name

    def __init__(self, on_ready: Callable[[], None] | None = None):
        super().__init__()
        self.on_ready = on_ready

    def finish(self) -> None:
        super().finish()
        if self.on_ready is not None:
            self.on_ready()


class GatewayScript:
    """Holds the gateway's chain where mitmproxy's script loader holds an `-s` script: one place
    in the master's chain, taken before the addons load, so the sentinel that `Settings`
    registers while loading runs after them."""

    def __init__(self) -> None:
        self.addons: list[object] = []


# -- one master ---------------------------------------------------------------------------

def gateway_chain(login_app_url: str | None) -> list[object]:
    """The `-s` script's chain; given the URL of a login app someone else supervises, without
    the login app supervisor."""
    chain = build_chain()
    if login_app_url is None:
        return chain
    runtime: Runtime = next(addon.runtime for addon in chain if isinstance(addon, Settings))
    runtime.login_app_url = login_app_url  # Settings keeps it while the config names no external app
    return [addon for addon in chain if not isinstance(addon, LoginAppSupervisor)]


def build_master(config: GatewayConfig, *, login_app_url: str | None = None, reuse_port: bool = False,
                 on_ready: Callable[[], None] | None = None) -> Master:
    """A master running the gateway; call it inside a running event loop. `on_ready` is
    called once the master has started without errors."""
    if reuse_port:
        share_listening_port()
    opts = options.Options()
    master = Master(opts)
    check = StartupCheck(on_ready)  # collects the errors logged from now on; `run` exits on them
    script = GatewayScript()
    # The built-ins a reverse-proxy gateway uses, in mitmdump's order around the script.
    master.addons.add(
        core.Core(),                # option checks, the basic commands
        disable_h2c.DisableH2C(),   # drops h2c upgrades mitmproxy cannot serve
        proxyserver.Proxyserver(),  # listeners and connections
        script,
        next_layer.NextLayer(),     # picks the HTTP layer per connection
        tlsconfig.TlsConfig(),      # TLS on the listener (tls_cert) and to https upstreams
        check,
    )
    opts.update(confdir=confdir_for(config), **proxy_options(config))
    chain = [ChainDispatch(gateway_chain(login_app_url))]  # one addon for mitmproxy to dispatch to
    for addon in chain:
        master.addons.register(addon)
    opts.update(gateway_config=str(config.source))
    # Then one `configure` with every option, as the script loader does after loading a script.
    script.addons = chain
    master.addons.invoke_addon_sync(script, hooks.ConfigureHook(set(opts.keys())))
    return master


def share_listening_port() -> None:
    """Let several processes listen on the gateway's port: the kernel spreads connections.

    mitmproxy's reverse-mode listener calls `asyncio.start_server` without `reuse_port`, and
    its server classes register by mode, so a subclass cannot take the place of this one."""

    async def listen(self, host: str, port: int) -> list[asyncio.Server]:
        return [await asyncio.start_server(self.handle_stream, host, port, reuse_port=True)]

    mode_servers.ReverseInstance.listen = listen  # type: ignore[method-assign]


async def serve(config: GatewayConfig, *, login_app_url: str | None = None, reuse_port: bool = False,
                parent_pid: int | None = None, ready_fd: int | None = None) -> None:
    master = build_master(config, login_app_url=login_app_url, reuse_port=reuse_port,
                          on_ready=(lambda: _signal_ready(ready_fd)) if ready_fd is not None else None)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, master.shutdown)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as mitmdump: a closed client must not kill the process
    watchdog = loop.create_task(_exit_when_orphaned(master, parent_pid)) if parent_pid else None
    try:
        await master.run()
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _signal_ready(fd: int) -> None:
    os.write(fd, b"1")
    os.close(fd)


async def _exit_when_orphaned(master: Master, parent_pid: int) -> None:
    # A worker left behind by a killed supervisor would keep serving old code on the shared port.
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    log.error("the launcher (pid %d) is gone; stopping", parent_pid)
    master.shutdown()


# -- many workers -------------------------------------------------------------------------

class WorkerFailed(Exception):
    pass


class Worker:
    """One worker process. It reports a successful start-up by writing a byte to a pipe, so a
    worker that dies before that is told apart from one that dies while serving."""

    def __init__(self, index: int, command: list[str]):
        self.index = index
        self.command = command
        self.backoff = 0.5
        self.restart_at: float | None = None
        self.ever_ready = False
        self._spawn()

    def _spawn(self) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        env = {**os.environ, WORKER_INDEX: str(self.index),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        try:
            self.process = subprocess.Popen([*self.command, "--ready-fd", str(write_end)], env=env,
                                            pass_fds=(write_end,))
        finally:
            os.close(write_end)
        self._ready_pipe: int | None = read_end
        self.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", self.index, self.process.pid)

    def _read_ready(self) -> None:
        if self._ready_pipe is None:
            return
        try:
            signalled = os.read(self._ready_pipe, 1)
        except BlockingIOError:
            return
        self.close()
        self.ever_ready = self.ever_ready or bool(signalled)

    def check(self, now: float) -> None:
        """Restart the worker if it died; raise WorkerFailed if it never started at all."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self._spawn()
            return
        self._read_ready()
        code = self.process.poll()
        if code is None:
            return
        self._read_ready()  # what it wrote before dying
        if not self.ever_ready:
            raise WorkerFailed(f"worker {self.index} exited with code {code} during start-up")
        self.backoff = 0.5 if now - self.started_at > HEALTHY_AFTER else min(self.backoff * 2, MAX_BACKOFF)
        self.restart_at = now + self.backoff
        log.error("worker %d (pid %d) exited with code %s; restarting in %.1fs", self.index, self.process.pid,
                  code, self.backoff)

    def close(self) -> None:
        if self._ready_pipe is not None:
            os.close(self._ready_pipe)
            self._ready_pipe = None


class WorkerPool:
    """N worker processes: restarted with back-off when one dies, all stopped at the end."""

    def __init__(self, config: GatewayConfig, size: int, login_app_url: str | None):
        self.config = config
        self.size = size
        self.login_app_url = login_app_url
        self.workers: list[Worker] = []

    def command(self, index: int) -> list[str]:
        args = [sys.executable, "-m", "addons.launcher", "worker", "--config", str(self.config.source),
                "--index", str(index), "--parent-pid", str(os.getpid())]
        return args + (["--login-app-url", self.login_app_url] if self.login_app_url else [])

    def start(self) -> None:
        self.workers = [Worker(i, self.command(i)) for i in range(1, self.size + 1)]

    def check(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            worker.check(now)

    def stop(self) -> None:
        """SIGTERM to every worker, which drains (addons/drain.py); SIGKILL to any still running
        a little after drain_timeout."""
        running = [w.process for w in self.workers if w.process.poll() is None]
        for process in running:
            process.terminate()
        stop_timeout = self.config.drain_timeout + STOP_TIMEOUT
        deadline = time.monotonic() + stop_timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %gs; killing it", process.pid, stop_timeout)
                process.kill()
                process.wait()
        for worker in self.workers:
            worker.close()


def ensure_port_free(config: GatewayConfig) -> None:
    """Fail clearly when something already listens on the port: with SO_REUSEPORT the workers
    would otherwise share it with another copy of the gateway, or crash one by one."""
    with socket.create_server((config.listen_host, config.listen_port)):
        pass


def prepare_confdir(config: GatewayConfig) -> None:
    # Created once here: workers starting together would each write a CA, and read half-written ones.
    certs.CertStore.from_store(confdir_for(config), options.CONF_BASENAME, options.KEY_SIZE)


async def supervise(config: GatewayConfig, size: int) -> int:
    login_app = LoginAppSupervisor(Runtime(config=config))
    login_app.running()  # starts it unless auth is off or login_app_url names an external one
    pool = WorkerPool(config, size, login_app.runtime.login_app_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("MCP Gateway: %d workers on %s:%d", size, config.listen_host, config.listen_port)
    pool.start()
    try:
        while not stop.is_set():
            pool.check()
            try:
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL)
            except TimeoutError:
                pass
        log.info("stopping %d workers", size)
        return 0
    except WorkerFailed as e:
        log.error("%s; stopping (its log lines above say why)", e)
        return 1
    finally:
        pool.stop()
        login_app.done()


# -- command line -------------------------------------------------------------------------

def configure_logging(level: str, tag: str) -> None:
    logsafe.install()  # the launcher's own lines too: one record, one line
    logging.basicConfig(stream=sys.stderr, level=level, force=True,
                        format=f"%(asctime)s {tag} %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # One line per client connection; the access log already has one per request.
        logging.getLogger("mitmproxy.proxy.server").setLevel(logging.WARNING)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mcp-gateway", description="The MCP Gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run}")
    run = commands.add_parser("run", help="run the gateway (a lean mitmproxy, no script reloader)")
    run.add_argument("--config", default=os.environ.get("MCP_GATEWAY_CONFIG", "gateway.toml"),
                     help="the gateway's configuration file (default: $MCP_GATEWAY_CONFIG or gateway.toml)")
    run.add_argument("--workers", type=int, default=1,
                     help="proxy processes sharing the listening port (SO_REUSEPORT, Linux); default 1")
    worker = commands.add_parser("worker")  # unlisted: started by `run --workers N`
    worker.add_argument("--config", required=True)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--parent-pid", type=int, required=True)
    worker.add_argument("--login-app-url")
    worker.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    if args.command == "run" and args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a proxying process's `main` on uvloop (libuv: less CPU per socket event than asyncio's
    own loop, docs/benchmarks.md), or on asyncio's with MCP_GATEWAY_EVENT_LOOP=asyncio."""
    choice = os.environ.get("MCP_GATEWAY_EVENT_LOOP", "uvloop")
    if choice not in ("uvloop", "asyncio"):
        raise SystemExit(f"mcp-gateway: MCP_GATEWAY_EVENT_LOOP must be uvloop or asyncio, not {choice!r}")
    factory = None
    if choice == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    asyncio.run(main, loop_factory=factory)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"mcp-gateway: configuration error: {e}", file=sys.stderr)
        return 2
    if args.command == "worker":
        configure_logging(config.logging_level, f"worker-{args.index}")
        run_event_loop(serve(config, login_app_url=args.login_app_url, reuse_port=True, parent_pid=args.parent_pid,
                             ready_fd=args.ready_fd))
        return 0
    configure_logging(config.logging_level, "launcher" if args.workers > 1 else "gateway")
    if args.workers == 1:
        run_event_loop(serve(config))
        return 0
    if config.listen_port == 0:
        print("mcp-gateway: --workers needs a fixed [gateway] listen_port, not 0", file=sys.stderr)
        return 2
    try:
        ensure_port_free(config)
    except OSError as e:
        print(f"mcp-gateway: cannot listen on {config.listen_host}:{config.listen_port}: {e}", file=sys.stderr)
        return 1
    prepare_confdir(config)
    return asyncio.run(supervise(config, args.workers))


if __name__ == "__main__":
    sys.exit(main())
