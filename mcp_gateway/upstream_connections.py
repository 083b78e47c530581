"""What the proxy and the login app share for per-user upstream tokens: one OAuth client per
server (cached while its configuration stays the same) and the token vault."""

from __future__ import annotations

from .config import GatewayConfig, ServerConfig
from .secretbox import SecretBox
from .sessions import SessionStore
from .upstream_oauth import UpstreamOAuth
from .upstream_tokens import TokenVault


class UpstreamConnections:
    def __init__(self, config: GatewayConfig, store: SessionStore):
        if not config.auth.secret_key:
            raise ValueError("per-user upstream tokens need SECRET_KEY")
        self._config = config
        self._store = store
        self._secretbox = SecretBox(config.auth.secret_key)
        self.vault = TokenVault(store, self._secretbox)
        self._clients: dict[str, UpstreamOAuth] = {}

    def oauth_for(self, server: ServerConfig) -> UpstreamOAuth:
        client = self._clients.get(server.name)
        if client is None or client.server != server:
            client = self._clients[server.name] = UpstreamOAuth(server, self._config.public_url, self._store,
                                                                self._secretbox)
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()
