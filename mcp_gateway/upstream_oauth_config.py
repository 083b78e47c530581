"""`[servers.upstream_oauth]`: how the gateway signs a user in to the service behind a server.

Configuration only (never registry-API data, docs/registry.md). The client secret follows
the credential-source rules of mcp_gateway/credentials.py: an environment variable named
`MCP_UPSTREAM_*` or a file under `[gateway] credentials_dir`, nothing else. Endpoints come
from `authorize_url` + `token_url`, from `issuer` (RFC 8414 / OIDC discovery), or — with
neither — from the upstream MCP server itself (its 401 names its protected-resource
metadata, which names its authorization server). Without a `client_id` the gateway
registers itself there (RFC 7591). docs/end-to-end-tokens.md explains the whole flow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import credentials
from .credentials import CredentialProblem

DEFAULT_TOKEN_HEADER = "Authorization"


@dataclass(frozen=True)
class UpstreamOAuthSettings:
    client_id: str = ""
    client_secret_env: str = ""
    client_secret_file: str = ""  # resolved inside credentials_dir
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    scopes: tuple[str, ...] = ()
    token_header: str = DEFAULT_TOKEN_HEADER
    resource: str | None = None  # RFC 8707 resource sent to the authorization server

    @property
    def discovers_from_upstream(self) -> bool:
        return not (self.issuer or self.authorize_url)

    def header_value(self, access_token: str) -> str:
        """`Authorization: Bearer <token>`, or the raw token in a named header."""
        if self.token_header.lower() == "authorization":
            return f"Bearer {access_token}"
        return access_token

    def client_secret(self, env: Mapping[str, str] | None = None) -> str | None:
        """The configured client secret, read now (a rotated file is picked up); None without one.
        Raises CredentialProblem when the source is unusable."""
        env = os.environ if env is None else env
        if self.client_secret_env:
            value = env.get(credentials.check_env_name(self.client_secret_env))
            if not value:
                raise CredentialProblem(f"{self.client_secret_env} is empty or unset")
            return credentials.check_value(value)
        if self.client_secret_file:
            return _files.read(Path(self.client_secret_file))
        return None


_files = credentials.CredentialFileCache()


def checked_settings(values: dict[str, Any], credentials_dir: Path | None) -> UpstreamOAuthSettings:
    """Settings from parsed keys; raises CredentialProblem naming the key (`.key`)."""
    if values["client_secret_env"] and values["client_secret_file"]:
        raise CredentialProblem("give client_secret_env or client_secret_file, not both", "client_secret_file")
    if (values["client_secret_env"] or values["client_secret_file"]) and not values["client_id"]:
        raise CredentialProblem("a client secret needs a client_id (without one the gateway registers itself)",
                                "client_id")
    if bool(values["authorize_url"]) != bool(values["token_url"]):
        raise CredentialProblem("give authorize_url and token_url together (or issuer to discover them)",
                                "token_url" if values["authorize_url"] else "authorize_url")
    if values["issuer"] and values["authorize_url"]:
        raise CredentialProblem("give issuer or authorize_url/token_url, not both", "issuer")
    try:
        credentials.check_header_name(values["token_header"])
    except CredentialProblem as e:
        raise CredentialProblem(str(e), "token_header") from None
    if values["client_secret_env"]:
        try:
            credentials.check_env_name(values["client_secret_env"])
        except CredentialProblem as e:
            raise CredentialProblem(str(e), "client_secret_env") from None
    if values["client_secret_file"]:
        try:
            values["client_secret_file"] = str(credentials.credential_file(values["client_secret_file"],
                                                                           credentials_dir))
        except CredentialProblem as e:
            raise CredentialProblem(str(e), "client_secret_file") from None
    return UpstreamOAuthSettings(**values)
