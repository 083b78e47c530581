"""An upstream MCP server that requires bearer tokens from an OAuth authorization server,
built with the `mcp` SDK's server-side auth (a `TokenVerifier` + `AuthSettings`): what a
per-user-token server (GitHub's, Atlassian's, ...) looks like to the gateway.

    python -m tests.support.bearer_upstream --port P --issuer http://127.0.0.1:IDP \
        --audience http://127.0.0.1:P/mcp --record seen.jsonl

Tokens are the test OIDC provider's JWT access tokens (RFC 9068), checked against its JWKS
(fetched once at start), its issuer and one of the `--audience` values. Without a valid token
every MCP request gets the SDK's 401 with `WWW-Authenticate: Bearer resource_metadata=…`, and
the protected-resource metadata names the provider as the authorization server. The tool
`whoami` answers the token's subject. Every request's Authorization and Cookie headers are
appended to `--record` (JSON lines) so a test can check what reached the upstream.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import httpx
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette


class JwtAccessTokens:
    """The SDK's TokenVerifier protocol over the provider's JWT access tokens."""

    def __init__(self, issuer: str, audiences: list[str]):
        self.issuer = issuer
        self.audiences = audiences
        discovery = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10, trust_env=False).json()
        keys = httpx.get(discovery["jwks_uri"], timeout=10, trust_env=False).json()
        self.keys = {key["kid"]: jwt.PyJWK(key) for key in keys["keys"]}

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(token, self.keys[kid].key, algorithms=["RS256"], issuer=self.issuer,
                                audience=self.audiences, options={"require": ["exp", "sub"]})
        except (jwt.PyJWTError, KeyError):
            return None
        return AccessToken(token=token, client_id=str(claims.get("client_id", "")),
                           scopes=str(claims.get("scope", "")).split(), expires_at=int(claims["exp"]),
                           subject=str(claims["sub"]))


def build_app(port: int, issuer: str, audiences: list[str], record: Path):
    resource = f"http://127.0.0.1:{port}/mcp"
    server = MCPServer("bearer-upstream", token_verifier=JwtAccessTokens(issuer, [*audiences, resource]),
                       auth=AuthSettings(issuer_url=issuer, resource_server_url=resource,
                                         validate_token_resource=False))

    @server.tool()
    def whoami() -> str:
        """The subject of the bearer token this call came with."""
        token = get_access_token()
        return token.subject if token and token.subject else "?"

    streamable = server.streamable_http_app(json_response=True)
    sse = server.sse_app()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with streamable.router.lifespan_context(app):
            yield

    app = Starlette(routes=[*sse.routes, *streamable.routes], middleware=streamable.user_middleware,
                    lifespan=lifespan)

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            with record.open("a") as f:
                f.write(json.dumps({"path": scope["path"], "authorization": headers.get("authorization"),
                                    "cookie": headers.get("cookie"), "headers": sorted(headers)}) + "\n")
        await app(scope, receive, send)

    return recording


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", action="append", default=[])
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.port, args.issuer, args.audience, args.record), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
