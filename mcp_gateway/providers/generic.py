"""Any OpenID Connect provider (Keycloak, Auth0, Entra ID, Google, oidc-provider, ...).

Configured with the MCP_AUTH_* variables: the issuer alone is enough (the endpoints come
from its discovery document); authorize, token and JWKS URLs may be given explicitly.
Groups come from the claim named by auth.groups_claim (default `groups`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp_gateway.config import GatewayConfig

from .oidc import OidcProvider


class GenericProvider(OidcProvider):
    name = "generic"

    def __init__(self, config: GatewayConfig) -> None:
        settings = config.auth.provider
        where = settings.get("issuer") or settings.get("authorize_url") or ""
        shown = settings.get("display_name") or urlsplit(where).hostname
        super().__init__(config, scopes=settings["scopes"], display_name=shown or "single sign-on")
