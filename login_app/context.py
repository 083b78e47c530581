"""What the login app's endpoints share, built once from the configuration."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from mcp_gateway.config import GatewayConfig
from mcp_gateway.authz import held_scopes
from mcp_gateway.identity import identity_of  # noqa: F401  (the pages import it from here)
from mcp_gateway.policy_repository import PolicyRepository
from mcp_gateway.registry import Registry, registry_for
from mcp_gateway.services import session_store_for
from mcp_gateway.sessions import SessionStore

from .accounts import LocalAccounts

log = logging.getLogger(__name__)

POLICY_CHECK_SECONDS = 1.0
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass
class LoginContext:
    config: GatewayConfig
    store: SessionStore
    accounts: LocalAccounts
    policies: PolicyRepository
    registry: Registry
    providers: dict[str, object] = field(default_factory=dict)  # name -> OAuth provider (login_app.providers)
    _policy_checked: float = field(default=0.0, init=False, repr=False)
    _policy_reloading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def build(cls, config: GatewayConfig) -> LoginContext:
        return cls(
            config=config,
            store=session_store_for(config),
            accounts=LocalAccounts.from_config(config.auth),
            policies=PolicyRepository(config.policy_dir),
            registry=registry_for(config),
        )

    def scopes_for(self, groups: tuple[str, ...], direct: tuple[str, ...] = ()) -> list[str]:
        self._reload_policy_in_background()
        return sorted(held_scopes(self.policies.current(), groups, direct, self.registry.names()))


    def _reload_policy_in_background(self) -> None:
        """At most once per POLICY_CHECK_SECONDS, a thread looks at the policy files and
        re-parses them if they changed: this runs in async endpoints, and neither the stat
        calls nor the parsing may hold up the event loop. Until the thread is done, requests
        get the policy in force before the edit — the same answer as had the edit come a
        moment later."""
        now = time.monotonic()
        if now - self._policy_checked < POLICY_CHECK_SECONDS or not self._policy_reloading.acquire(blocking=False):
            return
        self._policy_checked = now

        def reload() -> None:
            try:
                self.policies.reload_if_changed()
            except Exception:  # noqa: BLE001 — a thread's exception would vanish; keep the last good policy
                log.exception("policy: reload failed, the last good policy stays in force")
            finally:
                self._policy_reloading.release()

        try:
            threading.Thread(target=reload, name="policy-reload", daemon=True).start()
        except RuntimeError:  # the interpreter is shutting down
            self._policy_reloading.release()


def context(request: Request) -> LoginContext:
    return request.app.state.login


def client_address(request: Request) -> str:
    """The caller's address. X-Forwarded-For is believed only from a loopback peer — the
    gateway's proxy, which overwrites any value the client sent."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    try:
        if forwarded and ipaddress.ip_address(peer).is_loopback:
            return forwarded
    except ValueError:
        pass
    return peer or "unknown"


def throttled_address(address: str) -> str:
    """What a per-address limit counts: an IPv6 client by its /64 (one subscriber's network —
    every address in it is theirs to use), an IPv4-mapped IPv6 address as the IPv4 address
    it is; anything else as written."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip.packed, 64), strict=False))
    return str(ip)


