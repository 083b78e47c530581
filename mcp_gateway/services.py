"""Building the shared services (session store, secret box) from the configuration,
the same way in the proxy and in the login app."""

from __future__ import annotations

from .config import GatewayConfig
from .secretbox import SecretBox
from .sessions import SessionStore, open_store


def secretbox_for(config: GatewayConfig) -> SecretBox | None:
    return SecretBox(config.auth.secret_key) if config.auth.secret_key else None


def session_store_for(config: GatewayConfig) -> SessionStore:
    return open_store(
        config.session.store,
        base_dir=config.state_dir,
        lifetime=config.session.lifetime,
        idle_timeout=config.session.idle_timeout,
        secretbox=secretbox_for(config),
    )
