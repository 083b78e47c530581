"""Call a tool through the MCP Gateway with OAuth, as stock MCP clients do: given only the
server's URL, the `mcp` SDK discovers the gateway's metadata, registers itself, sends you to
the gateway's sign-in and consent pages in your browser, and calls the tool with the token."""

import asyncio
import os
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

GATEWAY = os.environ.get("GATEWAY_URL", "http://localhost:7860")
CALLBACK_PORT = int(os.environ.get("CALLBACK_PORT", "8765"))
REDIRECT_URI = f"http://127.0.0.1:{CALLBACK_PORT}/callback"


class MemoryStorage:
    """Where the SDK keeps its registration and tokens (keep them on disk in a real client)."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Callback:
    """A one-shot listener on the loopback redirect URI that catches the authorization code."""

    def __init__(self) -> None:
        self.params: dict[str, str] = {}
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                callback.params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"Signed in. You can close this tab.")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", CALLBACK_PORT), Handler)

    async def open_browser(self, authorization_url: str) -> None:
        threading.Thread(target=self.server.handle_request, daemon=True).start()
        print("Sign in here if no browser opens:", authorization_url)
        webbrowser.open(authorization_url)

    async def wait(self) -> AuthorizationCodeResult:
        while not self.params:
            await asyncio.sleep(0.2)
        self.server.server_close()
        return AuthorizationCodeResult(code=self.params["code"], state=self.params.get("state"),
                                       iss=self.params.get("iss"))


async def main(redirect_handler=None, callback_handler=None) -> str:
    callback = Callback() if redirect_handler is None else None
    auth = OAuthClientProvider(
        f"{GATEWAY}/api/streamable/currenttime",
        OAuthClientMetadata(client_name="My MCP script", redirect_uris=[REDIRECT_URI],
                            grant_types=["authorization_code", "refresh_token"]),
        MemoryStorage(),
        redirect_handler or callback.open_browser,
        callback_handler or callback.wait,
    )
    async with create_mcp_http_client(auth=auth) as http:
        async with Client(streamable_http_client(f"{GATEWAY}/api/streamable/currenttime", http_client=http)) as client:
            result = await client.call_tool("current_time_by_timezone", {"timezone": "Europe/Berlin"})
            return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(main()))
