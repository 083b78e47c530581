"""A stand-in for the discovery document of a Cognito user pool that has a domain.

moto serves `{endpoint}/{pool}/.well-known/openid-configuration` with the issuer and `jwks_uri`
only: it has no hosted UI, so it lists no `authorization_endpoint` or `token_endpoint`. Real
Cognito lists them (on the pool's domain) once the pool has one. This small loopback server
answers the same path with moto's own document, completed with the hosted-UI endpoints the
test chooses, or left as moto serves it (`complete=False`, a pool without a domain). Point
`MCP_AUTH_COGNITO_ENDPOINT_URL` at `url`; the JWKS still comes from moto (its `jwks_uri`).

    with completed_cognito_discovery(moto_cognito.endpoint_url, "https://auth.example.test") as emulator:
        env["MCP_AUTH_COGNITO_ENDPOINT_URL"] = emulator.url
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"


@dataclass
class CompletedDiscovery:
    url: str
    hosted_ui: str
    complete: bool = True
    requests: list[str] = field(default_factory=list)

    def endpoints(self) -> dict[str, str]:
        """What Cognito adds for a pool with a domain."""
        return {
            "authorization_endpoint": f"{self.hosted_ui}/oauth2/authorize",
            "token_endpoint": f"{self.hosted_ui}/oauth2/token",
            "userinfo_endpoint": f"{self.hosted_ui}/oauth2/userInfo",
            "revocation_endpoint": f"{self.hosted_ui}/oauth2/revoke",
            "end_session_endpoint": f"{self.hosted_ui}/logout",
        }


@contextmanager
def completed_cognito_discovery(moto_endpoint: str, hosted_ui: str, *, complete: bool = True
                                ) -> Iterator[CompletedDiscovery]:
    state = CompletedDiscovery(url="", hosted_ui=hosted_ui.rstrip("/"), complete=complete)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if not self.path.endswith(DISCOVERY_SUFFIX):
                self.send_error(404)
                return
            upstream = httpx.get(moto_endpoint + self.path, timeout=5, trust_env=False)
            document = upstream.json()
            assert "authorization_endpoint" not in document, "moto serves the endpoints now: drop this stand-in"
            if state.complete:
                document.update(state.endpoints())
            body = json.dumps(document).encode()
            self.send_response(upstream.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
