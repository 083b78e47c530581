"""Loads gateway.toml and puts mitmproxy in the mode the gateway needs.

`--set gateway_config=PATH` picks the file. A bad file stops start-up with one line
naming the key (mitmproxy exits by itself after an error is logged during start-up); a
bad file given at run time (mitmweb's options editor) is refused and leaves the gateway
unconfigured, so the sentinel refuses traffic rather than run on a half-read config.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions

from mcp_gateway.config import ConfigError, GatewayConfig, load_config
from mcp_gateway.policy_loader import PolicyError
from mcp_gateway.policy_repository import PolicyRepository
from mcp_gateway.registry import registry_for
from mcp_gateway.server_files import ServerFiles
from mcp_gateway.services import session_store_for
from mcp_gateway.sessions.cache import with_session_cache

from . import sentinel
from .runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "gateway.toml"


def confdir_for(config: GatewayConfig) -> str:
    return str(config.state_dir / "mitmproxy")


def proxy_options(config: GatewayConfig) -> dict[str, Any]:
    """The mitmproxy options the gateway runs with: applied in `running` under `mitmdump -s`,
    set before start-up by addons/launcher.py. One place, so the two cannot disagree."""
    # Nothing listens on port 1: whatever the gateway does not route explicitly cannot
    # reach a real service, even if every addon were gone.
    options: dict[str, Any] = {
        "mode": [f"reverse:http://127.0.0.1:1@{config.listen_host}:{config.listen_port}"],
        "connection_strategy": "lazy",
        "tcp_timeout": max(1, int(config.stream_idle_timeout)),
        "http2": bool(config.tls_cert),
    }
    if config.tls_cert:
        options["certs"] = [f"*={listener_certificate(config)}"]
    return options


def listener_certificate(config: GatewayConfig) -> str:
    """The PEM file mitmproxy serves the listener's TLS from. mitmproxy reads certificate and
    key from one file; with a separate `tls_key`, the two are joined into a private file
    under the state directory, rewritten at every start."""
    if not config.tls_key:
        return config.tls_cert
    try:
        pem = Path(config.tls_cert).read_bytes().rstrip(b"\n") + b"\n" + Path(config.tls_key).read_bytes()
    except OSError as e:
        raise ConfigError(f"[gateway] tls_cert/tls_key: cannot read {e.filename}: {e.strerror}") from None
    target = config.state_dir / "mitmproxy" / "listener.pem"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(pem)
    return str(target)


class Settings:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._applied_mode: list[str] | None = None
        self._is_running = False

    def load(self, loader) -> None:
        loader.add_option(
            "gateway_config", str, os.environ.get("MCP_GATEWAY_CONFIG", DEFAULT_CONFIG),
            "The MCP Gateway's configuration file (TOML, or JSON with the same structure). Relative paths in it "
            "resolve against its folder. Environment variables (MCP_AUTH_*, SECRET_KEY, ...) override it.",
        )
        sentinel.install()

    def configure(self, updated: set[str]) -> None:
        if "gateway_config" not in updated:
            return
        try:
            config = load_config(ctx.options.gateway_config)
            config.state_dir.mkdir(parents=True, exist_ok=True)
            server_files = ServerFiles(config.servers_dir, frozenset(s.name for s in config.servers))
            server_files.scan()
            if config.tls_cert:
                listener_certificate(config)  # a missing key file stops start-up here, naming the key
            registry = registry_for(config, files=server_files)
            store = with_session_cache(session_store_for(config)) if config.auth.enabled else None
            policies = PolicyRepository(config.policy_dir)
        except PolicyError as e:
            return self._fail(f"[gateway] policy_dir: {' '.join(str(e).split())}")
        except (ConfigError, OSError, ValueError) as e:
            return self._fail(str(e))
        logging.getLogger("mcp_gateway").setLevel(config.logging_level)
        logging.getLogger("addons").setLevel(config.logging_level)
        self.runtime.install(config, registry, store, policies, server_files)
        if self.runtime.login_app_url is None or config.login_app_url:
            self.runtime.login_app_url = config.login_app_url
        # confdir must be set before mitmproxy's TLS addon creates its CA at `running`.
        ctx.options.update(confdir=confdir_for(config))
        if self._is_running:
            self._apply_mode()

    def done(self) -> None:
        # Sync on purpose: mitmproxy calls `done` synchronously when a hot reload removes the
        # script's addons, and an async hook there aborts the reload watcher for good.
        store = self.runtime.release_store()
        closers = [store.close] if store is not None else []
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nothing was opened
        for close in (*closers, self.runtime.providers.aclose):
            loop.create_task(close())

    def _fail(self, problem: str) -> None:
        # Unconfigured, the Router and the sentinel refuse every request.
        self.runtime.config = None
        self.runtime.registry = None
        log.error("gateway configuration error: %s", problem)
        if self._is_running:
            raise exceptions.OptionsError(f"gateway configuration error: {problem}")

    def running(self) -> None:
        self._is_running = True
        if self.runtime.config is not None:
            self._apply_mode()

    def _apply_mode(self) -> None:
        config = self.runtime.config
        assert config is not None
        updates = proxy_options(config)
        spec = updates["mode"]
        if ctx.options.mode == spec:
            del updates["mode"]
        if "block_global" in ctx.options:
            # mitmproxy refuses clients with public addresses by default (it guards against
            # running an open forward proxy); a gateway exists to serve them.
            updates["block_global"] = False
        if "flow_detail" in ctx.options and ctx.options.flow_detail == 1:
            # mitmdump's default per-flow lines print whole URLs (OAuth codes, session ids in
            # queries); the gateway's access line, without the query, replaces them. An
            # operator who asks for more (--set flow_detail=2+) gets mitmproxy's lines.
            updates["flow_detail"] = 0
        ctx.options.update(**updates)
        if self._applied_mode != spec:
            self._applied_mode = spec
            log.info("MCP Gateway listening on %s:%d (public URL %s), config %s", config.listen_host,
                     config.listen_port, config.public_url, config.source)
            auth = (f"auth on ({config.auth.provider_type})" if config.auth.enabled
                    else "AUTH OFF: every caller may do everything")
            log.info("  %s; sessions in %s; policies from %s", auth, config.session.store.split("@")[-1],
                     config.policy_dir)
            log.info("  routes: /oauth/login, /oauth/me, /oauth/logout (login app%s), /api/servers (registry), "
                     "/healthz, /.well-known/oauth-protected-resource/api/{execute|streamable}/{server}",
                     f" at {config.login_app_url}" if config.login_app_url else ", supervised")
            for server in self.runtime.registry.all() if self.runtime.registry else []:
                state = "enabled" if server.enabled else "disabled"
                log.info("  server %-20s %s -> %s (%s)", server.name, f"/api/execute/{server.name}, "
                         f"/api/streamable/{server.name}", server.url, state)
                if server.scheme == "https" and not server.verify_tls:
                    log.warning("  server %s: verify_tls = false: its TLS certificate is NOT verified; anyone on "
                                "the path to %s can read and change its traffic", server.name, server.host_header)
