"""The login app's identity providers: those of mcp_gateway.providers, keyed by name
("cognito" | "okta" | "generic"), built once in the app's lifespan."""

from __future__ import annotations

from mcp_gateway.providers import Provider, build_providers

__all__ = ["Provider", "build_providers"]
