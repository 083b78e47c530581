"""Okta: the org authorization server or a custom one (`authorization_server`, e.g. "default").

Groups come from the `groups` claim (auth.groups_claim). The org server adds it for the
`groups` scope; a custom server needs a groups claim defined on it (docs/providers.md). When
the ID token comes without the claim (Okta's org server keeps ID tokens thin when an access
token is issued too) the groups are read from the userinfo endpoint.
"""

from __future__ import annotations

from mcp_gateway.config import GatewayConfig

from .oidc import OidcProvider

OKTA_SCOPES = ("openid", "email", "profile", "offline_access")


class OktaProvider(OidcProvider):
    name = "okta"
    display_name = "Okta"

    def __init__(self, config: GatewayConfig) -> None:
        org_server = not config.auth.provider.get("authorization_server")
        # Only the org server knows a `groups` scope; a custom server refuses unknown scopes.
        super().__init__(config, scopes=OKTA_SCOPES + (("groups",) if org_server else ()))
