"""Identity providers behind one small interface (one module each). Filled in by the OAuth issue."""

from __future__ import annotations

from mcp_gateway.config import GatewayConfig


async def build_providers(config: GatewayConfig) -> dict[str, object]:
    return {}
