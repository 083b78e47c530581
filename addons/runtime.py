"""What the gateway's addons share in one process, each field with one owner (docs/architecture.md §5).

| field | written by |
| config, registry, store, policies, server_files | `Settings` (`install`, on every configuration) |
| login_app_url | `Settings`, `LoginAppSupervisor` |
| builtin_servers | `RegistryMcp` (at construction) |
| health | `HealthChecks` |
| draining | `Drain` (True from SIGTERM on) |
| upstream_connections | `UpstreamOAuthTokens` (per-user upstream tokens, rebuilt for a new config or store) |
| providers | itself: built on first use, once per configuration |

A store or registry replaced by a new configuration is closed (its thread pool, its Redis
pool, its watcher thread) after `REPLACED_GRACE_SECONDS`, so requests still using it finish.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_gateway.config import GatewayConfig, ServerConfig
from mcp_gateway.health import HealthBoard
from mcp_gateway.policy_repository import PolicyRepository
from mcp_gateway.providers import Provider, build_providers
from mcp_gateway.registry import Registry
from mcp_gateway.server_files import ServerFiles
from mcp_gateway.sessions import SessionStore

log = logging.getLogger(__name__)

REPLACED_GRACE_SECONDS = 10.0


class IdpProviders:
    """The identity providers of the configuration in force: built once — two first requests
    at once build them once, the second waits — and again when the configuration changes."""

    def __init__(self, build: Callable[[GatewayConfig], Awaitable[dict[str, Provider]]] = build_providers):
        self._build = build
        self._config: GatewayConfig | None = None
        self._providers: dict[str, Provider] | None = None
        self._lock: asyncio.Lock | None = None  # made on first use, inside the running loop

    @property
    def built(self) -> dict[str, Provider] | None:
        return self._providers

    async def get(self, config: GatewayConfig) -> dict[str, Provider]:
        if self._config is config and self._providers is not None:
            return self._providers
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._config is not config or self._providers is None:
                replaced = self._providers
                self._providers = await self._build(config)
                self._config = config
                if replaced:
                    close_later(*(provider.aclose for provider in replaced.values()))
        return self._providers

    async def aclose(self) -> None:
        providers, self._providers, self._config = self._providers, None, None
        for provider in (providers or {}).values():
            await provider.aclose()


@dataclass
class Runtime:
    config: GatewayConfig | None = None
    registry: Registry | None = None
    login_app_url: str | None = None  # where /oauth/* is forwarded (the supervised child or an external app)
    store: SessionStore | None = None  # None with authentication off
    policies: PolicyRepository | None = None
    server_files: ServerFiles | None = None
    builtin_servers: dict[str, ServerConfig] = field(default_factory=dict)
    health: HealthBoard | None = None
    providers: IdpProviders = field(default_factory=IdpProviders)
    draining: bool = False
    upstream_connections: Any = None  # (config, store, UpstreamConnections) they were built for

    @property
    def ready(self) -> bool:
        return self.config is not None and self.registry is not None

    def install(self, config: GatewayConfig, registry: Registry, store: SessionStore | None,
                policies: PolicyRepository, server_files: ServerFiles) -> None:
        """A new configuration and what was built from it; what it replaces is closed."""
        replaced_store, replaced_registry = self.store, self.registry
        self.config, self.registry, self.store = config, registry, store
        self.policies, self.server_files = policies, server_files
        if replaced_store is not None and replaced_store is not store:
            close_later(replaced_store.close)
        if replaced_registry is not None and replaced_registry is not registry:
            replaced_registry.close()  # only stops its watcher thread: reads keep working

    def release_store(self) -> SessionStore | None:
        store, self.store = self.store, None
        return store

    @property
    def services(self) -> Mapping[str, Any]:
        """Read-only view under the old `services` keys, for addons written against them (one
        release; docs/architecture.md §5). Write the typed fields instead."""
        view: dict[str, Any] = {"policies": self.policies, "server_files": self.server_files,
                                "builtin_servers": self.builtin_servers}
        if self.store is not None:
            view["store"] = self.store
        if self.health is not None:
            view["health"] = self.health
        if self.providers.built is not None:
            view["providers"] = self.providers.built
        return types.MappingProxyType(view)


_closing: set[asyncio.Task] = set()


def close_later(*closers: Callable[[], Awaitable[None]], delay: float | None = None) -> None:
    """Close replaced services once requests that picked them up have had time to finish."""
    wait = REPLACED_GRACE_SECONDS if delay is None else delay

    async def close() -> None:
        await asyncio.sleep(wait)
        await _close_all(closers)

    try:
        task = asyncio.get_running_loop().create_task(close())
    except RuntimeError:  # no loop yet (start-up): nothing has used the service
        asyncio.run(_close_all(closers))
        return
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close_all(closers) -> None:
    for closer in closers:
        try:
            await closer()
        except Exception as e:  # best effort: the service is no longer used
            log.warning("closing a replaced service failed: %s: %s", type(e).__name__, e)
