"""Amazon Cognito: a user pool's hosted UI, groups in `cognito:groups`.

The issuer and JWKS derive from the user pool id and region (mcp_gateway.providers.endpoints);
the authorize, token, userInfo and revoke endpoints come from the pool's OIDC discovery document
(listed once the pool has a domain), or from MCP_AUTH_COGNITO_DOMAIN when it is set. Cognito's ID tokens carry `token_use: id`, `aud` = the app client id, the
username in `cognito:username`, and no `cognito:groups` at all for a user in no group.
"""

from __future__ import annotations

from mcp_gateway.config import GatewayConfig

from .oidc import OidcProvider

COGNITO_SCOPES = ("openid", "email", "profile")


class CognitoProvider(OidcProvider):
    name = "cognito"
    display_name = "Amazon Cognito"
    username_claims = ("cognito:username", "preferred_username", "email", "sub")
    token_use = "id"
    groups_from_userinfo = False  # Cognito's userInfo never lists groups: no claim means no group

    def __init__(self, config: GatewayConfig) -> None:
        super().__init__(config, scopes=COGNITO_SCOPES)
